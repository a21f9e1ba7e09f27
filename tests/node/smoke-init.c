/*
 * Entry point of the smoke-test workload image: changes the container's
 * writable layer the way an application would, then execs the workload
 * (argv[1..]). The changes make the overlayfs upper dir hold the three kinds of
 * entries a migration must carry over:
 *   /data/written.txt   a new file                  (regular file in upper)
 *   /data/delete-me     a file of the image removed (whiteout: char dev 0/0)
 *   /opq                an image dir removed and re-created with new content
 *                       (opaque dir: xattr trusted.overlay.opaque=y)
 * Static, no shell in the image.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) < 0) {
		perror(path);
		_exit(1);
	}
	close(fd);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PROGRAM [ARGS...]\n", argv[0]);
		return 2;
	}
	put("/data/written.txt", "written-by-source\n");
	unlink("/data/delete-me");
	unlink("/opq/a");
	rmdir("/opq");
	mkdir("/opq", 0755);
	put("/opq/new", "new-in-opaque-dir\n");
	execv(argv[1], argv + 1);
	perror(argv[1]);
	return 1;
}
