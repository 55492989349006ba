/* The HTTP side on libmicrohttpd: a thread per connection (a generation
 * blocks only its own connection), bodies capped before they are read,
 * HTTP basic authentication, and the routes of the API. */
#include <microhttpd.h>

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base64.h"
#include "server.h"

struct md_http {
    struct MHD_Daemon *daemon;
};

/* One request's body as it arrives. */
typedef struct conn {
    char *body;
    size_t size, cap;
    int too_large;
} conn;

static enum MHD_Result send_reply(struct MHD_Connection *c, md_reply *r)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->size, r->body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(r->body);
        return MHD_NO;
    }
    r->body = NULL;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            r->content_type ? r->content_type : "application/json");
    if (r->status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Basic realm=\"moe-diffuse\"");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result send_error(struct MHD_Connection *c, int status, const char *msg)
{
    md_reply r = {0};
    md_reply_error(&r, status, msg);
    return send_reply(c, &r);
}

/* Compares without stopping at the first difference, so the time taken
 * tells nothing of how much of a guess was right. */
static int same_secret(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    unsigned char d = alen != blen;
    for (size_t i = 0; i < alen; i++)
        d |= (unsigned char)(a[i] ^ b[i % (blen ? blen : 1)]);
    return d == 0;
}

static int authorized(const md_server *s, struct MHD_Connection *c)
{
    if (!s->cfg.auth)
        return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Basic ", 6) != 0)
        return 0;
    unsigned char *cred = NULL;
    size_t n = 0;
    if (md_base64_decode(h + 6, &cred, &n) != 0)
        return 0;
    int ok = same_secret((const char *)cred, n, s->cfg.auth);
    free(cred);
    return ok;
}

static void route(md_server *s, struct MHD_Connection *c, const char *url, const char *method,
                  const conn *k, md_reply *r)
{
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    int post = !strcmp(method, "POST");
    const char *b = k->body ? k->body : "";
    size_t n = k->size;
    if (post && !strcmp(url, "/sdapi/v1/txt2img"))
        md_api_txt2img(s, b, n, r);
    else if (post && !strcmp(url, "/sdapi/v1/img2img"))
        md_api_img2img(s, b, n, r);
    else if (get && !strcmp(url, "/sdapi/v1/progress")) {
        const char *skip = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
                                                       "skip_current_image");
        md_api_progress(s, skip && (!strcasecmp(skip, "true") || !strcmp(skip, "1")), r);
    } else if (post && !strcmp(url, "/sdapi/v1/interrupt"))
        md_api_interrupt(s, r);
    else if (get && !strcmp(url, "/sdapi/v1/samplers"))
        md_api_samplers(s, r);
    else if (get && !strcmp(url, "/sdapi/v1/sd-models"))
        md_api_sd_models(s, r);
    else if (get && !strcmp(url, "/sdapi/v1/options"))
        md_api_options_get(s, r);
    else if (post && !strcmp(url, "/sdapi/v1/options"))
        md_api_options_set(s, b, n, r);
    else if (post && !strcmp(url, "/sdapi/v1/png-info"))
        md_api_png_info(s, b, n, r);
    else if (get && !strcmp(url, "/sdapi/v1/loras"))
        md_api_loras(s, r);
    else if (get && !strcmp(url, "/moe/v1/stats"))
        md_api_moe_stats(s, r);
    else
        md_reply_error(r, 404, "Not Found");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **state)
{
    (void)version;
    md_server *s = cls;
    conn *k = *state;
    if (!k) { /* the headers: refuse what is not let in before reading the body */
        if (!authorized(s, c))
            return send_error(c, 401, "Incorrect username or password");
        const char *len = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                                      MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (len && strtoull(len, NULL, 10) > s->cfg.max_body) {
            char msg[160];
            snprintf(msg, sizeof msg, "the body is larger than this server's limit of %zu bytes",
                     s->cfg.max_body);
            return send_error(c, 413, msg);
        }
        k = calloc(1, sizeof *k);
        if (!k)
            return MHD_NO;
        *state = k;
        return MHD_YES;
    }
    if (*data_size) { /* more of the body */
        size_t n = *data_size;
        *data_size = 0;
        if (k->too_large || k->size + n > s->cfg.max_body) {
            k->too_large = 1; /* chunked past the cap: drained, never kept */
            return MHD_YES;
        }
        if (k->size + n + 1 > k->cap) {
            size_t cap = k->cap ? k->cap : 4096;
            while (cap < k->size + n + 1)
                cap *= 2;
            char *grown = realloc(k->body, cap);
            if (!grown)
                return MHD_NO;
            k->body = grown;
            k->cap = cap;
        }
        memcpy(k->body + k->size, data, n);
        k->size += n;
        k->body[k->size] = '\0';
        return MHD_YES;
    }
    if (k->too_large)
        return send_error(c, 413, "the body is larger than this server's limit");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    md_reply r = {.client_fd = ci ? (int)ci->connect_fd : -1};
    route(s, c, url, method, k, &r);
    return send_reply(c, &r);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state,
                         enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)c;
    (void)why;
    conn *k = *state;
    if (k)
        free(k->body);
    free(k);
    *state = NULL;
}

/* "ADDR:PORT", "[V6]:PORT" or ":PORT" (all interfaces). */
static int resolve(const char *listen, struct sockaddr_storage *addr, socklen_t *len, int *v6,
                   char *msg, size_t cap)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || !colon[1] || (size_t)(colon - listen) >= sizeof host) {
        snprintf(msg, cap, "--listen %s: expected ADDR:PORT, e.g. 127.0.0.1:7860", listen);
        return -1;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    char *h = host;
    if (h[0] == '[' && h[strlen(h) - 1] == ']') {
        h[strlen(h) - 1] = '\0';
        h++;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(h[0] ? h : NULL, colon + 1, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(msg, cap, "--listen %s: %s", listen, gai_strerror(rc));
        return -1;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return 0;
}

struct md_http *md_server_http_start(md_server *s, char *msg, size_t cap)
{
    struct sockaddr_storage addr;
    socklen_t len = 0;
    int v6 = 0;
    if (resolve(s->cfg.listen, &addr, &len, &v6, msg, cap) != 0)
        return NULL;
    struct md_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(msg, cap, "out of memory");
        return NULL;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     (v6 ? MHD_USE_IPv6 : 0);
    h->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        /* a client that sends nothing for a minute is dropped; a generation
         * in progress is not idle time */
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
        MHD_OPTION_END);
    if (!h->daemon) {
        snprintf(msg, cap, "cannot listen on %s (in use, or not an address of this machine?)",
                 s->cfg.listen);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    /* Always printed: with port 0 it is how a caller learns the port. */
    char host[256];
    const char *colon = strrchr(s->cfg.listen, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - s->cfg.listen), s->cfg.listen);
    fprintf(stderr, "moe-diffuse serve: listening on http://%s:%u\n", host[0] ? host : "0.0.0.0",
            info ? (unsigned)info->port : 0u);
    return h;
}

void md_server_http_stop(struct md_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
