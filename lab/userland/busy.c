// SPDX-License-Identifier: GPL-2.0
/*
 * kdive-busy: the userland of the kdive lab's `userland` and `scale` guests. Built on the host
 * with `gcc -static -O2 -pthread` and copied into the guest's initramfs as /bin/kdive-busy.
 *
 *   kdive-busy ROLE READYDIR     one process holding what ROLE says (below), forever
 *   kdive-busy scale NPROC NTHREADS NEXTRA
 *                                NPROC processes of NTHREADS tasks each plus NEXTRA
 *                                single-threaded ones; every 50th holds 64 files and 64 VMAs
 *
 * Each process says what it holds on the console, one line each, as
 *   KDIVE: userland pid=PID role=ROLE holds WHAT
 * and touches READYDIR/ROLE when it is set up (the guest waits for every role before the
 * crash). Everything is fixed: names, sizes, ports, IPC keys, signal numbers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/prctl.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

/* "KDIV": the System V IPC keys are IPC_KEY (shm), IPC_KEY + 1 (sem), IPC_KEY + 2 (msg). */
#define IPC_KEY 0x4b444956
#define TCP_PORT 7001
#define UDP_PORT 7002
#define MIB (1024 * 1024)

static const char *role = "?";
static const char *ready_dir = "/tmp/kdive-ready";
/* Whose readiness ready() reports: this process, or the vfork parent (role dstate). */
static pid_t ready_pid;

/* One console line about process `pid`, written at once (the roles run side by side). */
static void vsay(pid_t pid, const char *who, const char *fmt, va_list ap)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "KDIVE: userland pid=%d role=%s ", pid, who);

	n += vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(1, line, n) < 0)
		_exit(3);
}

static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(getpid(), role, fmt, ap);
	va_end(ap);
}

static void say_pid(pid_t pid, const char *who, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(pid, who, fmt, ap);
	va_end(ap);
}

static void die(const char *what)
{
	say("FAILED %s: %s", what, strerror(errno));
	exit(1);
}

static void ready(void)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", ready_dir, role);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("ready file");
	if (!ready_pid)
		ready_pid = getpid();
	dprintf(fd, "%d\n", ready_pid);
	close(fd);
	say_pid(ready_pid, role, "ready");
}

static void forever(void)
{
	for (;;)
		pause();
}

/* A file of `size` bytes, every byte `fill`. */
static int make_file(const char *path, size_t size, int fill, int flags)
{
	static char buf[65536];
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | flags, 0644);

	if (fd < 0)
		die(path);
	memset(buf, fill, sizeof(buf));
	for (size_t done = 0; done < size;) {
		size_t n = size - done < sizeof(buf) ? size - done : sizeof(buf);

		if (write(fd, buf, n) != (ssize_t)n)
			die(path);
		done += n;
	}
	return fd;
}

static int open_at(const char *path, int flags, int want_fd)
{
	int fd = open(path, flags, 0644);

	if (fd < 0)
		die(path);
	if (fd != want_fd) {
		if (dup2(fd, want_fd) < 0)
			die("dup2");
		close(fd);
	}
	return want_fd;
}

/* Regular files on tmpfs (/mnt/tmp) and on the ext2 disk (/mnt/ext), a pipe, a FIFO. */
static void role_files(void)
{
	int fd, p[2];

	close(make_file("/mnt/tmp/a.txt", 4096, 'a', 0));
	close(make_file("/mnt/ext/b.txt", 8192, 'b', 0));
	close(make_file("/mnt/ext/c.log", 0, 'c', 0));
	fd = open_at("/mnt/tmp/a.txt", O_RDONLY, 3);
	say("holds fd %d /mnt/tmp/a.txt (tmpfs, read-only, 4096 bytes)", fd);
	fd = open_at("/mnt/ext/b.txt", O_RDWR, 4);
	lseek(fd, 100, SEEK_SET);
	say("holds fd %d /mnt/ext/b.txt (ext2, read-write, 8192 bytes, offset 100)", fd);
	fd = open_at("/mnt/ext/c.log", O_WRONLY | O_APPEND, 5);
	if (write(fd, "kdive\n", 6) != 6)
		die("c.log");
	say("holds fd %d /mnt/ext/c.log (ext2, append, 6 bytes)", fd);
	if (pipe(p) < 0 || p[0] != 6 || p[1] != 7)
		die("pipe at fds 6 and 7");
	if (write(7, "in the pipe\n", 12) != 12)
		die("pipe write");
	say("holds fd 6 pipe (read end) fd 7 pipe (write end, 12 bytes unread)");
	if (mkfifo("/mnt/tmp/fifo", 0600) < 0 && errno != EEXIST)
		die("mkfifo");
	open_at("/mnt/tmp/fifo", O_RDWR, 8);
	say("holds fd 8 /mnt/tmp/fifo (FIFO, read-write)");
	open_at("/mnt/tmp", O_RDONLY | O_DIRECTORY, 9);
	say("holds fd 9 /mnt/tmp (directory)");
	if (chdir("/mnt/ext") < 0)
		die("chdir");
	say("holds cwd /mnt/ext");
}

static void set_addr(struct sockaddr_in *a, int port)
{
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons(port);
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

/* TCP listening and connected (both ends), UDP bound and connected, unix stream and dgram. */
static void role_net(void)
{
	struct sockaddr_in a;
	struct sockaddr_un u;
	int one = 1, fd, sv[2];

	fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	set_addr(&a, TCP_PORT);
	if (fd != 3 || bind(fd, (void *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0)
		die("tcp listen");
	say("holds fd 3 TCP 127.0.0.1:%d LISTEN", TCP_PORT);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd != 4 || connect(fd, (void *)&a, sizeof(a)) < 0)
		die("tcp connect");
	if (accept(3, NULL, NULL) != 5)
		die("tcp accept");
	if (write(4, "hello over tcp\n", 15) != 15)
		die("tcp write");
	say("holds fd 4 TCP client connected to 127.0.0.1:%d (15 bytes unread at the server)",
	    TCP_PORT);
	say("holds fd 5 TCP 127.0.0.1:%d ESTABLISHED (accepted)", TCP_PORT);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	set_addr(&a, UDP_PORT);
	if (fd != 6 || bind(fd, (void *)&a, sizeof(a)) < 0)
		die("udp bind");
	say("holds fd 6 UDP 127.0.0.1:%d bound", UDP_PORT);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd != 7 || connect(fd, (void *)&a, sizeof(a)) < 0)
		die("udp connect");
	if (write(7, "hello over udp\n", 15) != 15)
		die("udp write");
	say("holds fd 7 UDP connected to 127.0.0.1:%d (one 15-byte datagram queued at fd 6)",
	    UDP_PORT);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&u, 0, sizeof(u));
	u.sun_family = AF_UNIX;
	strcpy(u.sun_path, "/tmp/kdive.sock");
	unlink(u.sun_path);
	if (fd != 8 || bind(fd, (void *)&u, sizeof(u)) < 0 || listen(fd, 8) < 0)
		die("unix listen");
	say("holds fd 8 UNIX STREAM /tmp/kdive.sock LISTEN");
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd != 9 || connect(fd, (void *)&u, sizeof(u)) < 0)
		die("unix connect");
	if (accept(8, NULL, NULL) != 10)
		die("unix accept");
	say("holds fd 9 UNIX STREAM connected to /tmp/kdive.sock");
	say("holds fd 10 UNIX STREAM /tmp/kdive.sock (accepted)");
	if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0 || sv[0] != 11 || sv[1] != 12)
		die("socketpair");
	say("holds fd 11 fd 12 UNIX DGRAM socketpair");
}

/* Shared and private mappings, file-backed and anonymous, each filled with its own byte. */
static void role_mmap(void)
{
	int fd;
	char *p;

	fd = make_file("/mnt/tmp/map-shared.bin", 1 * MIB, 's', 0);
	p = mmap(NULL, 1 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap shared file");
	memset(p, 'S', 1 * MIB);
	say("holds mmap %p-%p rw-s /mnt/tmp/map-shared.bin (1 MiB, bytes 'S')", p, p + MIB);
	close(fd);
	fd = make_file("/mnt/ext/map-private.bin", 2 * MIB, 'p', 0);
	p = mmap(NULL, 2 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		die("mmap private file");
	memset(p, 'P', MIB); /* the first MiB copied on write, the second still the file's 'p' */
	say("holds mmap %p-%p rw-p /mnt/ext/map-private.bin (2 MiB, first MiB written 'P')", p,
	    p + 2 * MIB);
	close(fd);
	p = mmap(NULL, 4 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap anon private");
	memset(p, 'A', 4 * MIB);
	say("holds mmap %p-%p rw-p anonymous (4 MiB, bytes 'A')", p, p + 4 * MIB);
	p = mmap(NULL, 2 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap anon shared");
	memset(p, 'H', 2 * MIB);
	say("holds mmap %p-%p rw-s anonymous shared (2 MiB, bytes 'H')", p, p + 2 * MIB);
	p = mmap(NULL, 64 * 1024, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap anon read-only");
	say("holds mmap %p-%p r--p anonymous (64 KiB, never touched)", p, p + 64 * 1024);
}

/* System V shared memory (attached), a semaphore set and a message queue. */
static void role_ipc(void)
{
	int shm, sem, msq;
	char *p;
	struct {
		long mtype;
		char mtext[32];
	} msg;
	unsigned short vals[3] = {1, 2, 3};

	shm = shmget(IPC_KEY, 1 * MIB, IPC_CREAT | 0600);
	if (shm < 0)
		die("shmget");
	p = shmat(shm, NULL, 0);
	if (p == (void *)-1)
		die("shmat");
	memset(p, 'M', 1 * MIB);
	say("holds shm key 0x%08x id %d 1048576 bytes attached at %p", IPC_KEY, shm, p);
	sem = semget(IPC_KEY + 1, 3, IPC_CREAT | 0600);
	if (sem < 0 || semctl(sem, 0, SETALL, vals) < 0)
		die("semget");
	say("holds sem key 0x%08x id %d nsems 3 values 1 2 3", IPC_KEY + 1, sem);
	msq = msgget(IPC_KEY + 2, IPC_CREAT | 0600);
	if (msq < 0)
		die("msgget");
	for (int i = 1; i <= 2; i++) {
		msg.mtype = i;
		snprintf(msg.mtext, sizeof(msg.mtext), "kdive message %d", i);
		if (msgsnd(msq, &msg, strlen(msg.mtext) + 1, 0) < 0)
			die("msgsnd");
	}
	say("holds msg key 0x%08x id %d 2 messages queued", IPC_KEY + 2, msq);
}

static void on_signal(int sig)
{
	(void)sig;
}

/* A POSIX timer (CLOCK_MONOTONIC, SIGUSR1) and the real and virtual itimers, none due soon. */
static void role_timer(void)
{
	struct sigevent sev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGUSR1};
	struct itimerspec its = {.it_value = {.tv_sec = 1000}, .it_interval = {.tv_sec = 1000}};
	struct itimerval itv = {.it_value = {.tv_sec = 2000}, .it_interval = {.tv_sec = 2000}};
	timer_t t;

	signal(SIGUSR1, on_signal);
	signal(SIGALRM, on_signal);
	signal(SIGVTALRM, on_signal);
	if (timer_create(CLOCK_MONOTONIC, &sev, &t) < 0 || timer_settime(t, 0, &its, NULL) < 0)
		die("timer_create");
	say("holds posix timer id %ld CLOCK_MONOTONIC SIGUSR1 every 1000 s", (long)(intptr_t)t);
	if (setitimer(ITIMER_REAL, &itv, NULL) < 0)
		die("setitimer real");
	say("holds itimer ITIMER_REAL every 2000 s (SIGALRM)");
	itv.it_value.tv_sec = itv.it_interval.tv_sec = 3000;
	if (setitimer(ITIMER_VIRTUAL, &itv, NULL) < 0)
		die("setitimer virtual");
	say("holds itimer ITIMER_VIRTUAL every 3000 s (SIGVTALRM)");
}

/* Blocked and pending signals, queued real-time signals, handlers and an ignored signal. */
static void role_signals(void)
{
	sigset_t block;
	union sigval v;

	signal(SIGHUP, on_signal);
	signal(SIGTERM, SIG_IGN);
	say("holds handler SIGHUP, ignores SIGTERM");
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGRTMIN + 1);
	if (sigprocmask(SIG_BLOCK, &block, NULL) < 0)
		die("sigprocmask");
	say("holds blocked SIGUSR1 SIGUSR2 SIGRTMIN+1 (%d)", SIGRTMIN + 1);
	kill(getpid(), SIGUSR1);
	v.sival_int = 11;
	sigqueue(getpid(), SIGRTMIN + 1, v);
	v.sival_int = 22;
	sigqueue(getpid(), SIGRTMIN + 1, v);
	say("holds pending SIGUSR1 (process) SIGRTMIN+1 x2 (values 11 22)");
}

static void *thread_main(void *arg)
{
	char name[16];

	snprintf(name, sizeof(name), "busy-thr-%ld", (long)(intptr_t)arg);
	prctl(PR_SET_NAME, name);
	say("holds thread tid=%ld %s", (long)syscall(SYS_gettid), name);
	for (;;)
		pause();
	return NULL;
}

/* Four threads besides the main one, each named busy-thr-N. */
static void role_threads(void)
{
	pthread_t t;

	for (long i = 1; i <= 4; i++)
		if (pthread_create(&t, NULL, thread_main, (void *)i) != 0)
			die("pthread_create");
	sleep(1);
}

/* 48 MiB of anonymous memory in a memory cgroup limited to 16 MiB (the guest's init puts
 * this process there): most of it goes to swap. */
static void role_swap(void)
{
	size_t size = 48 * MIB;
	char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char line[128];
	FILE *f;

	if (p == MAP_FAILED)
		die("mmap swap");
	for (size_t i = 0; i < size; i += 4096)
		p[i] = (char)(i / 4096) | 1;
	say("holds mmap %p-%p rw-p anonymous (48 MiB, byte (page index | 1) at each page start)", p,
	    p + size);
	f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmSwap:", 7) || !strncmp(line, "VmRSS:", 6)) {
			line[strcspn(line, "\n")] = 0;
			say("has %s", line);
		}
	if (f)
		fclose(f);
}

/* A zombie child (exited, never reaped) and a stopped one (SIGSTOP). */
static void role_children(void)
{
	pid_t z = fork(), s;
	int p[2];
	char c;

	if (z == 0)
		_exit(7);
	if (pipe(p) < 0)
		die("pipe");
	s = fork();
	if (s == 0) {
		prctl(PR_SET_NAME, "busy-stopped");
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		forever();
	}
	/* Stopped once it has its name. */
	if (read(p[0], &c, 1) != 1)
		die("stopped child");
	close(p[0]);
	close(p[1]);
	kill(s, SIGSTOP);
	usleep(200000);
	say("holds zombie child pid=%d (exit 7), stopped child pid=%d busy-stopped", z, s);
	say_pid(z, "zombie", "is a zombie (exit 7) of pid=%d", getpid());
	say_pid(s, "stopped", "is stopped (SIGSTOP), child of pid=%d", getpid());
}

/* The parent of a vfork whose child never execs: it sleeps uninterruptibly (D, killable). */
static void role_dstate(void)
{
	pid_t parent = getpid();
	pid_t child = vfork();

	if (child == 0) {
		/* In the vfork child: only raw system calls and say() (stack and write). */
		prctl(PR_SET_NAME, "busy-vforked");
		say_pid(parent, "dstate", "holds vfork child pid=%d busy-vforked (waits in D state)",
			getpid());
		say_pid(getpid(), "vforked", "is the vfork child of pid=%d (never execs)", parent);
		ready_pid = parent;
		ready();
		forever();
	}
	/* Not reached while the child lives. */
	forever();
}

/* ---- scale */

static int scale_pipe[2];

static void *scale_thread(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

/* Every 50th process: 64 more open files and 64 more VMAs (alternating protections: no merge). */
static void scale_heavy(int i)
{
	int fd = open("/mnt/tmp/scale.bin", O_RDONLY);

	for (int j = 0; fd >= 0 && j < 64; j++)
		dup(fd);
	for (int j = 0; j < 64; j++) {
		char *p = mmap(NULL, 8192, (j & 1) ? PROT_READ : PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p != MAP_FAILED && !(j & 1))
			p[0] = (char)i;
	}
}

static void scale_child(int i, int nthreads)
{
	pthread_attr_t attr;
	pthread_t t;
	char name[16];

	snprintf(name, sizeof(name), nthreads > 1 ? "scale-mt-%d" : "scale-%d", i % 100000);
	prctl(PR_SET_NAME, name);
	if (i % 50 == 0)
		scale_heavy(i);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (int j = 1; j < nthreads; j++)
		if (pthread_create(&t, &attr, scale_thread, NULL) != 0)
			break;
	if (write(scale_pipe[1], "x", 1) != 1)
		_exit(1);
	forever();
}

static void scale(int nproc, int nthreads, int nextra)
{
	int total = nproc + nextra, made = 0, got = 0;
	char buf[4096];

	role = "scale";
	close(make_file("/mnt/tmp/scale.bin", 4096, 'z', 0));
	if (pipe(scale_pipe) < 0)
		die("pipe");
	for (int i = 0; i < total; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			close(scale_pipe[0]);
			scale_child(i, i < nproc ? nthreads : 1);
		}
		if (pid < 0) {
			say("fork %d failed: %s", i, strerror(errno));
			break;
		}
		made++;
	}
	close(scale_pipe[1]);
	while (got < made) {
		ssize_t n = read(scale_pipe[0], buf, sizeof(buf));

		if (n <= 0)
			break;
		got += n;
	}
	say("holds %d processes (%d of %d tasks each, %d single), %d tasks in all; %d ready", made,
	    nproc, nthreads, nextra, nproc * nthreads + nextra, got);
	ready();
	forever();
}

int main(int argc, char **argv)
{
	if (argc >= 5 && !strcmp(argv[1], "scale")) {
		scale(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
		return 0;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: kdive-busy ROLE READYDIR | scale NPROC NTHREADS NEXTRA\n");
		return 2;
	}
	role = argv[1];
	ready_dir = argv[2];
	{
		char name[16];

		snprintf(name, sizeof(name), "busy-%s", role);
		prctl(PR_SET_NAME, name);
	}
	if (!strcmp(role, "files"))
		role_files();
	else if (!strcmp(role, "net"))
		role_net();
	else if (!strcmp(role, "mmap"))
		role_mmap();
	else if (!strcmp(role, "ipc"))
		role_ipc();
	else if (!strcmp(role, "timer"))
		role_timer();
	else if (!strcmp(role, "signals"))
		role_signals();
	else if (!strcmp(role, "threads"))
		role_threads();
	else if (!strcmp(role, "swap"))
		role_swap();
	else if (!strcmp(role, "children"))
		role_children();
	else if (!strcmp(role, "dstate"))
		role_dstate();
	else {
		fprintf(stderr, "kdive-busy: unknown role %s\n", role);
		return 2;
	}
	ready();
	forever();
	return 0;
}
