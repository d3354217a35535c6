/* The local cluster's pod sandbox ("pause") process: holds the pod's namespaces,
 * reaps orphaned children, and exits 0 on SIGTERM or SIGINT. Built with
 * `gcc -static` by scripts/cluster.sh and packed into a one-layer image. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
	(void)sig;
	_exit(0);
}

static void reap(int sig) {
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0) {
	}
}

int main(void) {
	struct sigaction stop_action = {.sa_handler = stop};
	struct sigaction reap_action = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
	sigaction(SIGTERM, &stop_action, NULL);
	sigaction(SIGINT, &stop_action, NULL);
	sigaction(SIGCHLD, &reap_action, NULL);
	for (;;) {
		pause();
	}
	return EXIT_SUCCESS;
}
