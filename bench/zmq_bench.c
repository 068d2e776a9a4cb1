/*
 * zmq_bench -- libzmq anchor for the ironhouse benchmark harness.
 *
 * Measures the same things as `ironhouse bench ...` with the same CLI and the
 * same one-line JSON output, so bench/run.py can put both side by side.
 *
 *   zmq_bench thr SIZE COUNT [--curve] [--port P]
 *   zmq_bench lat SIZE COUNT [--curve] [--port P]
 *   zmq_bench hs COUNT [--curve] [--port P]
 *
 * Build: gcc -O2 -o bench/build/zmq_bench bench/zmq_bench.c \
 *            $(pkg-config --cflags --libs libzmq) -lpthread
 *
 * Every blocking call carries a timeout (IO_TIMEOUT_MS) and the whole process
 * is bounded by a watchdog alarm (WATCHDOG_S), so nothing can hang forever.
 * Any failure prints a message on stderr and exits non-zero.
 */
#define _GNU_SOURCE
#include <zmq.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IO_TIMEOUT_MS 30000 /* per blocking send/recv */
#define WATCHDOG_S 600      /* whole process */
#define LAT_WARMUP 1000
#define HS_SIZE 64

/* ------------------------------------------------------------------ utils */

static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "zmq_bench: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void die_zmq(const char *what)
{
    die("%s: %s", what, zmq_strerror(zmq_errno()));
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "zmq_bench: watchdog expired, aborting\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(3);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static long parse_long(const char *s, const char *what, long min, long max)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max)
        die("invalid %s '%s' (expected an integer in [%ld, %ld])", what, s, min, max);
    return v;
}

static void set_int(void *sock, int opt, int val, const char *name)
{
    if (zmq_setsockopt(sock, opt, &val, sizeof val) != 0)
        die_zmq(name);
}

static void set_timeouts(void *sock)
{
    set_int(sock, ZMQ_SNDTIMEO, IO_TIMEOUT_MS, "setsockopt(ZMQ_SNDTIMEO)");
    set_int(sock, ZMQ_RCVTIMEO, IO_TIMEOUT_MS, "setsockopt(ZMQ_RCVTIMEO)");
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* --------------------------------------------------------------- security */

struct keys {
    int curve;
    char server_public[41], server_secret[41];
    char client_public[41], client_secret[41];
};

static void make_keys(struct keys *k)
{
    if (!k->curve)
        return;
    if (!zmq_has("curve"))
        die("this libzmq was built without CURVE support");
    if (zmq_curve_keypair(k->server_public, k->server_secret) != 0)
        die_zmq("zmq_curve_keypair(server)");
    if (zmq_curve_keypair(k->client_public, k->client_secret) != 0)
        die_zmq("zmq_curve_keypair(client)");
}

static void make_server(void *sock, const struct keys *k)
{
    if (!k->curve)
        return;
    set_int(sock, ZMQ_CURVE_SERVER, 1, "setsockopt(ZMQ_CURVE_SERVER)");
    if (zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->server_secret, 40) != 0)
        die_zmq("setsockopt(ZMQ_CURVE_SECRETKEY, server)");
}

static void make_client(void *sock, const struct keys *k)
{
    if (!k->curve)
        return;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, k->server_public, 40) != 0)
        die_zmq("setsockopt(ZMQ_CURVE_SERVERKEY)");
    if (zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, k->client_public, 40) != 0)
        die_zmq("setsockopt(ZMQ_CURVE_PUBLICKEY)");
    if (zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->client_secret, 40) != 0)
        die_zmq("setsockopt(ZMQ_CURVE_SECRETKEY, client)");
}

/* ------------------------------------------------------- server-side setup */

/* A bound server socket with its own context. It is created and bound on the
 * main thread (so the endpoint is known before the client starts) and then
 * handed to its worker thread; pthread_create is a full memory barrier, which
 * is what libzmq requires to migrate a socket between threads. */
struct server {
    void *ctx;
    void *sock;
    char endpoint[256];
    long size;
    long count;
    double elapsed_s; /* thr only */
};

static void *new_ctx(void)
{
    void *ctx = zmq_ctx_new();
    if (!ctx)
        die_zmq("zmq_ctx_new");
    if (zmq_ctx_set(ctx, ZMQ_IO_THREADS, 1) != 0)
        die_zmq("zmq_ctx_set(ZMQ_IO_THREADS)");
    return ctx;
}

static void server_open(struct server *s, int type, const struct keys *k, long port)
{
    char addr[64];
    s->ctx = new_ctx();
    s->sock = zmq_socket(s->ctx, type);
    if (!s->sock)
        die_zmq("zmq_socket(server)");
    set_timeouts(s->sock);
    make_server(s->sock, k);
    if (port > 0)
        snprintf(addr, sizeof addr, "tcp://127.0.0.1:%ld", port);
    else
        snprintf(addr, sizeof addr, "tcp://127.0.0.1:*");
    if (zmq_bind(s->sock, addr) != 0)
        die("zmq_bind(%s): %s", addr, zmq_strerror(zmq_errno()));
    size_t len = sizeof s->endpoint;
    if (zmq_getsockopt(s->sock, ZMQ_LAST_ENDPOINT, s->endpoint, &len) != 0)
        die_zmq("getsockopt(ZMQ_LAST_ENDPOINT)");
}

static void server_close(struct server *s)
{
    set_int(s->sock, ZMQ_LINGER, 0, "setsockopt(ZMQ_LINGER)");
    zmq_close(s->sock);
    zmq_ctx_term(s->ctx);
}

static void start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
    int rc = pthread_create(t, NULL, fn, arg);
    if (rc != 0)
        die("pthread_create: %s", strerror(rc));
}

/* ------------------------------------------------------------- throughput */

static void *thr_receiver(void *arg)
{
    struct server *s = arg;
    zmq_msg_t msg;
    uint64_t start = 0;
    if (zmq_msg_init(&msg) != 0)
        die_zmq("zmq_msg_init");
    for (long i = 0; i < s->count; i++) {
        if (zmq_msg_recv(&msg, s->sock, 0) < 0)
            die("recv of message %ld/%ld: %s", i + 1, s->count, zmq_strerror(zmq_errno()));
        if (i == 0)
            start = now_ns();
        if ((long)zmq_msg_size(&msg) != s->size)
            die("message %ld has %zu bytes, expected %ld", i + 1, zmq_msg_size(&msg), s->size);
    }
    uint64_t end = now_ns();
    zmq_msg_close(&msg);
    s->elapsed_s = (double)(end - start) / 1e9;
    return NULL;
}

static void run_thr(long size, long count, const struct keys *k, long port)
{
    struct server srv = {.size = size, .count = count};
    pthread_t t;
    server_open(&srv, ZMQ_PULL, k, port);
    start_thread(&t, thr_receiver, &srv);

    void *ctx = new_ctx();
    void *push = zmq_socket(ctx, ZMQ_PUSH);
    if (!push)
        die_zmq("zmq_socket(PUSH)");
    set_timeouts(push);
    set_int(push, ZMQ_LINGER, -1, "setsockopt(ZMQ_LINGER)");
    make_client(push, k);
    if (zmq_connect(push, srv.endpoint) != 0)
        die("zmq_connect(%s): %s", srv.endpoint, zmq_strerror(zmq_errno()));
    for (long i = 0; i < count; i++) {
        zmq_msg_t msg;
        if (zmq_msg_init_size(&msg, (size_t)size) != 0)
            die_zmq("zmq_msg_init_size");
        memset(zmq_msg_data(&msg), 'x', (size_t)size);
        if (zmq_msg_send(&msg, push, 0) < 0)
            die("send of message %ld/%ld: %s", i + 1, count, zmq_strerror(zmq_errno()));
    }
    int rc = pthread_join(t, NULL);
    if (rc != 0)
        die("pthread_join: %s", strerror(rc));
    zmq_close(push);
    zmq_ctx_term(ctx);
    server_close(&srv);

    /* Same convention as libzmq's perf/local_thr: COUNT / (last - first). */
    double elapsed = srv.elapsed_s > 0 ? srv.elapsed_s : 1e-9;
    double mps = (double)count / elapsed;
    double mbps = mps * (double)size / 1e6;
    printf("{\"impl\":\"libzmq\",\"mode\":\"thr\",\"size\":%ld,\"count\":%ld,\"curve\":%s,"
           "\"msgs_per_sec\":%.1f,\"mb_per_sec\":%.1f}\n",
           size, count, k->curve ? "true" : "false", mps, mbps);
}

/* ---------------------------------------------------------------- latency */

/* REP echo loop, bounded by the number of requests it expects. */
static void *rep_echo(void *arg)
{
    struct server *s = arg;
    zmq_msg_t msg;
    if (zmq_msg_init(&msg) != 0)
        die_zmq("zmq_msg_init");
    for (long i = 0; i < s->count; i++) {
        if (zmq_msg_recv(&msg, s->sock, 0) < 0)
            die("echo server recv %ld/%ld: %s", i + 1, s->count, zmq_strerror(zmq_errno()));
        if (s->size >= 0 && (long)zmq_msg_size(&msg) != s->size)
            die("echo server got %zu bytes, expected %ld", zmq_msg_size(&msg), s->size);
        if (zmq_msg_send(&msg, s->sock, 0) < 0)
            die("echo server send %ld/%ld: %s", i + 1, s->count, zmq_strerror(zmq_errno()));
    }
    zmq_msg_close(&msg);
    return NULL;
}

static void report_percentiles(const char *mode, long size, long count, int curve,
                               uint64_t *rtt_ns)
{
    qsort(rtt_ns, (size_t)count, sizeof *rtt_ns, cmp_u64);
    double median = (double)rtt_ns[count / 2] / 1e3;
    double p99 = (double)rtt_ns[(count * 99) / 100] / 1e3;
    if (size >= 0)
        printf("{\"impl\":\"libzmq\",\"mode\":\"%s\",\"size\":%ld,\"count\":%ld,\"curve\":%s,"
               "\"median_us\":%.1f,\"p99_us\":%.1f}\n",
               mode, size, count, curve ? "true" : "false", median, p99);
    else
        printf("{\"impl\":\"libzmq\",\"mode\":\"%s\",\"count\":%ld,\"curve\":%s,"
               "\"median_us\":%.1f,\"p99_us\":%.1f}\n",
               mode, count, curve ? "true" : "false", median, p99);
}

static void run_lat(long size, long count, const struct keys *k, long port)
{
    struct server srv = {.size = size, .count = count + LAT_WARMUP};
    pthread_t t;
    server_open(&srv, ZMQ_REP, k, port);
    start_thread(&t, rep_echo, &srv);

    uint64_t *rtt = malloc((size_t)count * sizeof *rtt);
    char *out = malloc((size_t)size + 1);
    char *in = malloc((size_t)size + 1);
    if (!rtt || !out || !in)
        die("out of memory");
    memset(out, 'x', (size_t)size);

    void *ctx = new_ctx();
    void *req = zmq_socket(ctx, ZMQ_REQ);
    if (!req)
        die_zmq("zmq_socket(REQ)");
    set_timeouts(req);
    set_int(req, ZMQ_LINGER, 0, "setsockopt(ZMQ_LINGER)");
    make_client(req, k);
    if (zmq_connect(req, srv.endpoint) != 0)
        die("zmq_connect(%s): %s", srv.endpoint, zmq_strerror(zmq_errno()));

    for (long i = 0; i < count + LAT_WARMUP; i++) {
        uint64_t t0 = now_ns();
        if (zmq_send(req, out, (size_t)size, 0) < 0)
            die("send of request %ld: %s", i + 1, zmq_strerror(zmq_errno()));
        int n = zmq_recv(req, in, (size_t)size + 1, 0);
        if (n < 0)
            die("recv of reply %ld: %s", i + 1, zmq_strerror(zmq_errno()));
        uint64_t t1 = now_ns();
        if (n != size)
            die("reply %ld has %d bytes, expected %ld", i + 1, n, size);
        if (i >= LAT_WARMUP)
            rtt[i - LAT_WARMUP] = t1 - t0;
    }
    int rc = pthread_join(t, NULL);
    if (rc != 0)
        die("pthread_join: %s", strerror(rc));
    zmq_close(req);
    zmq_ctx_term(ctx);
    server_close(&srv);

    report_percentiles("lat", size, count, k->curve, rtt);
    free(rtt);
    free(out);
    free(in);
}

/* -------------------------------------------------------------- handshake */

static void run_hs(long count, const struct keys *k, long port)
{
    struct server srv = {.size = HS_SIZE, .count = count};
    pthread_t t;
    server_open(&srv, ZMQ_REP, k, port);
    start_thread(&t, rep_echo, &srv);

    uint64_t *lat = malloc((size_t)count * sizeof *lat);
    if (!lat)
        die("out of memory");
    char out[HS_SIZE], in[HS_SIZE + 1];
    memset(out, 'x', sizeof out);

    void *ctx = new_ctx();
    for (long i = 0; i < count; i++) {
        uint64_t t0 = now_ns();
        void *req = zmq_socket(ctx, ZMQ_REQ);
        if (!req)
            die_zmq("zmq_socket(REQ)");
        set_timeouts(req);
        set_int(req, ZMQ_LINGER, 0, "setsockopt(ZMQ_LINGER)");
        make_client(req, k);
        if (zmq_connect(req, srv.endpoint) != 0)
            die("zmq_connect(%s): %s", srv.endpoint, zmq_strerror(zmq_errno()));
        if (zmq_send(req, out, sizeof out, 0) < 0)
            die("send on connection %ld: %s", i + 1, zmq_strerror(zmq_errno()));
        int n = zmq_recv(req, in, sizeof in, 0);
        if (n < 0)
            die("recv on connection %ld: %s", i + 1, zmq_strerror(zmq_errno()));
        uint64_t t1 = now_ns();
        if (n != HS_SIZE)
            die("reply on connection %ld has %d bytes, expected %d", i + 1, n, HS_SIZE);
        lat[i] = t1 - t0;
        zmq_close(req);
    }
    int rc = pthread_join(t, NULL);
    if (rc != 0)
        die("pthread_join: %s", strerror(rc));
    zmq_ctx_term(ctx);
    server_close(&srv);

    report_percentiles("hs", -1, count, k->curve, lat);
    free(lat);
}

/* ------------------------------------------------------------------- main */

static void usage(void)
{
    fprintf(stderr,
            "usage: zmq_bench thr SIZE COUNT [--curve] [--port P]\n"
            "       zmq_bench lat SIZE COUNT [--curve] [--port P]\n"
            "       zmq_bench hs COUNT [--curve] [--port P]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *mode = argv[1];
    int npos = strcmp(mode, "hs") == 0 ? 1 : 2;
    if (strcmp(mode, "thr") && strcmp(mode, "lat") && strcmp(mode, "hs"))
        usage();

    long pos[2] = {0, 0};
    int got = 0;
    long port = 0;
    struct keys k;
    memset(&k, 0, sizeof k);
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--curve") == 0) {
            k.curve = 1;
        } else if (strcmp(argv[i], "--port") == 0) {
            if (++i >= argc)
                usage();
            port = parse_long(argv[i], "port", 1, 65535);
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "zmq_bench: unknown option %s\n", argv[i]);
            usage();
        } else if (got < npos) {
            pos[got] = parse_long(argv[i], got == 0 && npos == 2 ? "SIZE" : "COUNT", 0,
                                  got == 0 && npos == 2 ? (1L << 30) : 1000000000L);
            got++;
        } else {
            usage();
        }
    }
    if (got != npos)
        usage();

    signal(SIGALRM, on_alarm);
    alarm(WATCHDOG_S);
    make_keys(&k);

    if (strcmp(mode, "thr") == 0) {
        if (pos[1] < 1)
            die("COUNT must be >= 1");
        run_thr(pos[0], pos[1], &k, port);
    } else if (strcmp(mode, "lat") == 0) {
        if (pos[1] < 1)
            die("COUNT must be >= 1");
        run_lat(pos[0], pos[1], &k, port);
    } else {
        if (pos[0] < 1)
            die("COUNT must be >= 1");
        run_hs(pos[0], &k, port);
    }
    if (fflush(stdout) != 0)
        die("writing to stdout: %s", strerror(errno));
    return 0;
}
