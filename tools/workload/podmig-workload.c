/*
 * podmig-workload: a stateful process for migration tests and benchmarks.
 *
 * It holds N MiB of memory, rewrites a given fraction of its pages per second
 * and keeps state that can be verified after a migration:
 *   - a counter that increases by one every tick (a restart would reset it),
 *   - an incrementally maintained checksum of its whole memory; on SIGUSR1 it
 *     recomputes the checksum from scratch and logs whether both agree, which
 *     proves that every page came back intact.
 * It appends one line per tick (every --tick-ms, default 1 ms) to its log with
 * a wall-clock timestamp, so the application-visible downtime of a migration
 * is the largest gap between consecutive ticks.
 *
 * Log lines (space separated):
 *   S <pid> <mib> <rate> <pattern> <epoch>       start
 *   T <counter> <epoch> <pages written since last tick>
 *   V <counter> <ok|BAD> <incremental sum> <full sum>   after SIGUSR1
 *
 * Build: cc -O2 -static -o podmig-workload podmig-workload.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define WORDS_PER_PAGE (PAGE / sizeof(uint64_t))

static volatile sig_atomic_t verify_requested;
static volatile sig_atomic_t stop_requested;

static void on_usr1(int sig) { (void)sig; verify_requested = 1; }
static void on_term(int sig) { (void)sig; stop_requested = 1; }

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void log_line(int fd, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && write(fd, buf, (size_t)n) < 0 && errno != EINTR)
		_exit(3);
}

static void usage(const char *argv0)
{
	fprintf(stderr,
		"usage: %s [-m MiB] [-r fraction-per-second] [-t tick-ms] [-p contiguous|scattered] [-l logfile]\n",
		argv0);
	exit(2);
}

int main(int argc, char **argv)
{
	size_t mib = 64;
	double rate = 0.1, tick_ms = 1.0;
	const char *log_path = NULL, *pattern = "scattered";
	int opt;

	while ((opt = getopt(argc, argv, "m:r:t:p:l:h")) != -1) {
		switch (opt) {
		case 'm': mib = strtoul(optarg, NULL, 10); break;
		case 'r': rate = atof(optarg); break;
		case 't': tick_ms = atof(optarg); break;
		case 'p': pattern = optarg; break;
		case 'l': log_path = optarg; break;
		default: usage(argv[0]);
		}
	}
	if (mib == 0 || rate < 0 || tick_ms <= 0 ||
	    (strcmp(pattern, "contiguous") && strcmp(pattern, "scattered")))
		usage(argv[0]);

	int fd = log_path ? open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : 1;
	if (fd < 0) {
		perror("open log");
		return 1;
	}

	size_t npages = (mib << 20) / PAGE;
	uint64_t *mem = malloc(npages * PAGE);
	if (!mem) {
		perror("malloc");
		return 1;
	}
	/* Non-zero, non-uniform content: zero pages would not be transferred. */
	uint64_t sum = 0;
	for (size_t i = 0; i < npages * WORDS_PER_PAGE; i++) {
		mem[i] = (i + 1) * 0x9E3779B97F4A7C15ULL;
		sum += mem[i];
	}

	struct sigaction sa = { 0 };
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	log_line(fd, "S %d %zu %.4f %s %.6f\n", (int)getpid(), mib, rate, pattern, wall_now());

	/* Pages to rewrite per tick, with the fraction carried over. */
	double per_tick = rate * (double)npages * tick_ms / 1000.0, carry = 0;
	uint64_t counter = 0, value = 1;
	size_t cursor = 0;
	/* Scattered: stride through memory with a step coprime to npages. */
	size_t step = 1;
	if (!strcmp(pattern, "scattered")) {
		step = 4099;
		while (npages > 1 && (npages % step == 0))
			step += 2;
	}
	struct timespec next;
	clock_gettime(CLOCK_MONOTONIC, &next);

	while (!stop_requested) {
		carry += per_tick;
		uint64_t pages = (uint64_t)carry;
		carry -= (double)pages;
		for (uint64_t k = 0; k < pages; k++) {
			uint64_t *w = mem + cursor * WORDS_PER_PAGE + (value % WORDS_PER_PAGE);
			uint64_t nv = *w ^ (value * 0xBF58476D1CE4E5B9ULL + counter);
			sum += nv - *w;
			*w = nv;
			cursor = (cursor + step) % npages;
			value++;
		}
		counter++;
		log_line(fd, "T %llu %.6f %llu\n", (unsigned long long)counter, wall_now(),
			 (unsigned long long)pages);

		if (verify_requested) {
			verify_requested = 0;
			uint64_t full = 0;
			for (size_t i = 0; i < npages * WORDS_PER_PAGE; i++)
				full += mem[i];
			log_line(fd, "V %llu %s %016llx %016llx\n", (unsigned long long)counter,
				 full == sum ? "ok" : "BAD", (unsigned long long)sum,
				 (unsigned long long)full);
		}

		next.tv_nsec += (long)(tick_ms * 1e6);
		while (next.tv_nsec >= 1000000000L) {
			next.tv_nsec -= 1000000000L;
			next.tv_sec++;
		}
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		/* After a freeze, or on another host whose monotonic clock differs,
		 * neither catch up on missed ticks nor sleep until a far deadline. */
		if (now.tv_sec > next.tv_sec + 1 || next.tv_sec > now.tv_sec + 1)
			next = now;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR && !stop_requested && !verify_requested)
			;
	}
	log_line(fd, "E %llu %.6f\n", (unsigned long long)counter, wall_now());
	return 0;
}
