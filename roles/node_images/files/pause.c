/*
 * Minimal static sandbox ("pause") process for the node smoke tests: the CRI
 * sandbox container only has to hold the pod's namespaces. No registry is
 * reachable, so the sandbox image is built locally from this file
 * (see mk_oci_image.sh). Exits on SIGINT/SIGTERM, reaps orphans.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) { (void)sig; _exit(0); }
static void on_chld(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) ; }

int main(void)
{
	struct sigaction sa = { 0 };
	sa.sa_handler = on_term;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sa.sa_handler = on_chld;
	sa.sa_flags = SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	for (;;)
		pause();
	return 0;
}
