// sluice's batched UDP socket: recvmmsg(2) and sendmmsg(2) under libuv's poll.
//
// Why this is written by hand: it is the product's hot path. Through node:dgram every datagram
// costs one recvmsg and one sendmsg system call, a C++→JS callback, an `rinfo` object and Node's
// send machinery (argument checks, an address lookup, a nextTick): on a 2-core VM that caps a bare
// dgram echo at ~100k answers/s, before sluice does any work. Here one poll wakeup reads up to
// BATCH datagrams with one system call, JS handles them in one call, and the answers it writes
// into the shared `tx` area leave with one sendmmsg. No npm package does this for Node 20.
//
// Memory shared with JS (ArrayBuffers created here, owned by V8, kept alive by references), for a
// socket opened with `batch` slots (at most BATCH) and a send area or not:
//   rx      batch slots of RX_SLOT bytes: the datagrams of the current batch
//   rxmeta  batch × META int32: [length (-1 when truncated), port, family (4|6),
//           address bytes (16, network order; IPv4 in the first 4), 0]
//   tx      batch slots of TX_SLOT bytes (or none): answers JS writes for the current batch
//   txmeta  batch × 2 int32: [answer length, index of the datagram it answers]
//
// Lifetime: close() stops the poll and closes the socket; the struct itself lives until the JS
// handle (an external) is garbage-collected, so a call on a closed handle finds it still there
// and answers EBADF instead of reading freed memory.
// The JS callback gets the number of datagrams and returns how many tx slots it filled. Answers
// that come later (forwarded queries) leave one at a time with sendTo().
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define BATCH 64
#define RX_SLOT 16384
#define TX_SLOT 4096
#define META 8
// Batches handled per wakeup before yielding to the rest of the event loop (timers, TCP, upstream
// answers): a flood on one socket must not starve the others.
#define ROUNDS 16

typedef struct {
  int fd;
  int family;
  int batch;
  int has_tx;
  int closing;    // close() was called: no more reads or sends
  int closed;     // the poll handle is closed and the fd with it
  int finalized;  // the JS handle is gone: free the struct once closed
  uint64_t send_errors;
  uint64_t truncated;
  uv_poll_t poll;
  napi_env env;
  napi_ref callback, rx_ref, rxmeta_ref, tx_ref, txmeta_ref;
  napi_async_context async_context;
  uint8_t *rx;
  int32_t *rxmeta;
  uint8_t *tx;
  int32_t *txmeta;
  struct mmsghdr rmsg[BATCH];
  struct iovec riov[BATCH];
  struct sockaddr_storage raddr[BATCH];
  struct mmsghdr tmsg[BATCH];
  struct iovec tiov[BATCH];
} batch_socket;

#define CHECK(call)                                                     \
  do {                                                                  \
    if ((call) != napi_ok) {                                            \
      napi_throw_error(env, "ERR_UDP_BATCH", "N-API call failed: " #call); \
      return NULL;                                                      \
    }                                                                   \
  } while (0)

static const char *errno_code(int e) {
  switch (e) {
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    default: return "EIO";
  }
}

static napi_value throw_errno(napi_env env, const char *what, int e) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(e));
  napi_throw_error(env, errno_code(e), msg);
  return NULL;
}

static void send_batch(batch_socket *s, int filled, int received) {
  int k = 0;
  if (!s->has_tx) return;
  for (int j = 0; j < filled && j < s->batch; j++) {
    int32_t len = s->txmeta[j * 2], idx = s->txmeta[j * 2 + 1];
    if (len <= 0 || len > TX_SLOT || idx < 0 || idx >= received) continue;
    s->tiov[k].iov_base = s->tx + (size_t)j * TX_SLOT;
    s->tiov[k].iov_len = (size_t)len;
    memset(&s->tmsg[k].msg_hdr, 0, sizeof(struct msghdr));
    s->tmsg[k].msg_hdr.msg_iov = &s->tiov[k];
    s->tmsg[k].msg_hdr.msg_iovlen = 1;
    s->tmsg[k].msg_hdr.msg_name = &s->raddr[idx];
    s->tmsg[k].msg_hdr.msg_namelen = s->rmsg[idx].msg_hdr.msg_namelen;
    k++;
  }
  int sent = 0;
  while (sent < k) {
    int r = sendmmsg(s->fd, s->tmsg + sent, (unsigned)(k - sent), MSG_DONTWAIT);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      // The send buffer is full (or the datagram was refused): the first one is dropped, the
      // client retries; carry on with the rest.
      s->send_errors++;
      sent++;
      continue;
    }
    sent += r;
  }
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  (void)events;
  batch_socket *s = handle->data;
  if (status < 0 || s->closing) return;
  napi_env env = s->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, global;
  napi_get_reference_value(env, s->callback, &callback);
  napi_get_global(env, &global);
  for (int round = 0; round < ROUNDS && !s->closing; round++) {
    for (int i = 0; i < s->batch; i++) {
      s->riov[i].iov_base = s->rx + (size_t)i * RX_SLOT;
      s->riov[i].iov_len = RX_SLOT;
      memset(&s->rmsg[i].msg_hdr, 0, sizeof(struct msghdr));
      s->rmsg[i].msg_hdr.msg_iov = &s->riov[i];
      s->rmsg[i].msg_hdr.msg_iovlen = 1;
      s->rmsg[i].msg_hdr.msg_name = &s->raddr[i];
      s->rmsg[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
    }
    int n = recvmmsg(s->fd, s->rmsg, (unsigned)s->batch, MSG_DONTWAIT, NULL);
    if (n <= 0) break;
    for (int i = 0; i < n; i++) {
      int32_t *m = s->rxmeta + i * META;
      memset(m, 0, META * sizeof(int32_t));
      if (s->rmsg[i].msg_hdr.msg_flags & MSG_TRUNC) {
        m[0] = -1;
        s->truncated++;
      } else {
        m[0] = (int32_t)s->rmsg[i].msg_len;
      }
      const struct sockaddr_storage *a = &s->raddr[i];
      if (a->ss_family == AF_INET) {
        const struct sockaddr_in *a4 = (const void *)a;
        m[1] = ntohs(a4->sin_port);
        m[2] = 4;
        memcpy(&m[3], &a4->sin_addr, 4);
      } else {
        const struct sockaddr_in6 *a6 = (const void *)a;
        m[1] = ntohs(a6->sin6_port);
        m[2] = 6;
        memcpy(&m[3], &a6->sin6_addr, 16);
      }
    }
    napi_value argv[1], result;
    napi_create_int32(env, n, &argv[0]);
    // make_callback (not call_function): the promise jobs and nextTicks the handler queued run
    // when it returns, as after any other I/O callback.
    napi_status st = napi_make_callback(env, s->async_context, global, callback, 1, argv, &result);
    if (st != napi_ok) {
      // The JS side catches its own errors; anything that still escapes is reported as an
      // uncaught exception, which is what node:dgram would do.
      napi_value err;
      if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
      break;
    }
    int32_t filled = 0;
    if (napi_get_value_int32(env, result, &filled) != napi_ok) filled = 0;
    if (!s->closing && filled > 0) send_batch(s, filled, n);
    if (n < s->batch) break;
  }
  napi_close_handle_scope(env, scope);
}

static napi_value shared_buffer(napi_env env, size_t len, void **data, napi_ref *ref) {
  napi_value ab;
  if (napi_create_arraybuffer(env, len, data, &ab) != napi_ok) return NULL;
  if (napi_create_reference(env, ab, 1, ref) != napi_ok) return NULL;
  return ab;
}

static batch_socket *unwrap(napi_env env, napi_value v) {
  batch_socket *s = NULL;
  if (napi_get_value_external(env, v, (void **)&s) != napi_ok || s == NULL) {
    napi_throw_type_error(env, NULL, "not an open batch socket");
    return NULL;
  }
  return s;
}

static int parse_address(int family, const char *text, int port, struct sockaddr_storage *out, socklen_t *len) {
  memset(out, 0, sizeof *out);
  if (family == 6) {
    struct sockaddr_in6 *a6 = (void *)out;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    *len = sizeof *a6;
    if (inet_pton(AF_INET6, text, &a6->sin6_addr) == 1) return 0;
    // A link-local address with its zone (fe80::1%eth0): numeric getaddrinfo knows the syntax.
    if (!strchr(text, '%')) return -1;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_INET6;
    hints.ai_flags = AI_NUMERICHOST;
    if (getaddrinfo(text, NULL, &hints, &res) != 0 || !res) return -1;
    memcpy(a6, res->ai_addr, sizeof *a6);
    freeaddrinfo(res);
    a6->sin6_port = htons((uint16_t)port);
    return 0;
  }
  struct sockaddr_in *a4 = (void *)out;
  a4->sin_family = AF_INET;
  a4->sin_port = htons((uint16_t)port);
  *len = sizeof *a4;
  return inet_pton(AF_INET, text, &a4->sin_addr) == 1 ? 0 : -1;
}

static void on_closed(uv_handle_t *handle) {
  batch_socket *s = handle->data;
  close(s->fd);
  napi_env env = s->env;
  napi_delete_reference(env, s->callback);
  if (s->rx_ref) napi_delete_reference(env, s->rx_ref);
  if (s->rxmeta_ref) napi_delete_reference(env, s->rxmeta_ref);
  if (s->tx_ref) napi_delete_reference(env, s->tx_ref);
  if (s->txmeta_ref) napi_delete_reference(env, s->txmeta_ref);
  napi_async_destroy(env, s->async_context);
  s->closed = 1;
  if (s->finalized) free(s);
}

static void close_socket(batch_socket *s) {
  if (s->closing) return;
  s->closing = 1;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, on_closed);
}

// The JS handle was garbage-collected: free the struct, closing the socket first if JS never did.
static void finalize_socket(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  batch_socket *s = data;
  s->finalized = 1;
  if (s->closed) free(s);
  else close_socket(s);
}

// open(family: 4|6, address: string, port: number, reusePort: boolean, recvBufferSize: number,
//      callback: (count) => filled, batch = 64, withTx = true)
//   -> { handle, rx, rxmeta, tx, txmeta, port, batch, rxSlot, txSlot, meta }
// `batch` and `withTx` size the shared memory: an upstream pool socket, replaced every few
// thousand queries, needs a few slots and no send area, not the listener's 1.3 MiB.
static napi_value Open(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) {
    napi_throw_type_error(env, NULL, "open(family, address, port, reusePort, recvBufferSize, callback[, batch, withTx])");
    return NULL;
  }
  int32_t family, port, rcvbuf, batch = BATCH;
  bool reuse_port, with_tx = true;
  char address[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  size_t alen;
  CHECK(napi_get_value_int32(env, argv[0], &family));
  CHECK(napi_get_value_string_utf8(env, argv[1], address, sizeof address, &alen));
  CHECK(napi_get_value_int32(env, argv[2], &port));
  CHECK(napi_get_value_bool(env, argv[3], &reuse_port));
  CHECK(napi_get_value_int32(env, argv[4], &rcvbuf));
  if (argc > 6) CHECK(napi_get_value_int32(env, argv[6], &batch));
  if (argc > 7) CHECK(napi_get_value_bool(env, argv[7], &with_tx));
  if (batch < 1) batch = 1;
  if (batch > BATCH) batch = BATCH;

  struct sockaddr_storage sa;
  socklen_t salen;
  if (parse_address(family, address, port, &sa, &salen) != 0) {
    napi_throw_error(env, "EINVAL", "not an IP address");
    return NULL;
  }
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  int one = 1, zero = 0;
  // As node:dgram does for a udp6 socket bound to an IPv6 address: IPv4 clients too, mapped.
  if (family == 6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "SO_REUSEPORT", e);
  }
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  int sndbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  if (bind(fd, (struct sockaddr *)&sa, salen) != 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "bind", e);
  }
  struct sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  getsockname(fd, (struct sockaddr *)&bound, &blen);
  int bound_port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                               : ntohs(((struct sockaddr_in *)&bound)->sin_port);

  batch_socket *s = calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  s->fd = fd;
  s->family = family;
  s->batch = batch;
  s->has_tx = with_tx;
  s->env = env;
  const char *failed = NULL;
  int async_ready = 0;
  napi_value obj, name, handle, v;
  napi_value rx = NULL, rxmeta = NULL, tx = NULL, txmeta = NULL;
  if (napi_create_object(env, &obj) != napi_ok || napi_create_reference(env, argv[5], 1, &s->callback) != napi_ok ||
      napi_create_string_utf8(env, "sluice:udp-batch", NAPI_AUTO_LENGTH, &name) != napi_ok) {
    failed = "N-API object";
    goto fail;
  }
  if (napi_async_init(env, obj, name, &s->async_context) != napi_ok) {
    failed = "N-API async context";
    goto fail;
  }
  async_ready = 1;
  rx = shared_buffer(env, (size_t)batch * RX_SLOT, (void **)&s->rx, &s->rx_ref);
  rxmeta = shared_buffer(env, (size_t)batch * META * 4, (void **)&s->rxmeta, &s->rxmeta_ref);
  if (with_tx) {
    tx = shared_buffer(env, (size_t)batch * TX_SLOT, (void **)&s->tx, &s->tx_ref);
    txmeta = shared_buffer(env, (size_t)batch * 2 * 4, (void **)&s->txmeta, &s->txmeta_ref);
  }
  if (!rx || !rxmeta || (with_tx && (!tx || !txmeta))) {
    failed = "the batch buffers";
    goto fail;
  }
  napi_set_named_property(env, obj, "rx", rx);
  napi_set_named_property(env, obj, "rxmeta", rxmeta);
  if (with_tx) {
    napi_set_named_property(env, obj, "tx", tx);
    napi_set_named_property(env, obj, "txmeta", txmeta);
  }
  const int32_t ints[] = {bound_port, batch, RX_SLOT, with_tx ? TX_SLOT : 0, META};
  const char *names[] = {"port", "batch", "rxSlot", "txSlot", "meta"};
  for (int i = 0; i < 5; i++) {
    if (napi_create_int32(env, ints[i], &v) != napi_ok || napi_set_named_property(env, obj, names[i], v) != napi_ok) {
      failed = "N-API object";
      goto fail;
    }
  }
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || uv_poll_init(loop, &s->poll, fd) != 0) {
    failed = "uv_poll_init";
    goto fail;
  }
  s->poll.data = s;
  // From here the poll handle exists: failures go through close_socket, which frees on close.
  if (uv_poll_start(&s->poll, UV_READABLE, on_readable) != 0 ||
      napi_create_external(env, s, finalize_socket, NULL, &handle) != napi_ok) {
    s->finalized = 1;
    close_socket(s);
    napi_throw_error(env, "EIO", "cannot start polling the socket");
    return NULL;
  }
  napi_set_named_property(env, obj, "handle", handle);
  return obj;

fail:
  if (s->callback) napi_delete_reference(env, s->callback);
  if (s->rx_ref) napi_delete_reference(env, s->rx_ref);
  if (s->rxmeta_ref) napi_delete_reference(env, s->rxmeta_ref);
  if (s->tx_ref) napi_delete_reference(env, s->tx_ref);
  if (s->txmeta_ref) napi_delete_reference(env, s->txmeta_ref);
  if (async_ready) napi_async_destroy(env, s->async_context);
  close(fd);
  free(s);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) {
    char msg[96];
    snprintf(msg, sizeof msg, "cannot set up the batched socket: %s", failed);
    napi_throw_error(env, "EIO", msg);
  }
  return NULL;
}

// sendTo(handle, buffer, length, address, port) -> 0 or -errno
static napi_value SendTo(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  batch_socket *s = unwrap(env, argv[0]);
  if (!s) return NULL;
  void *data;
  size_t size;
  int32_t len, port;
  char address[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  size_t alen;
  CHECK(napi_get_buffer_info(env, argv[1], &data, &size));
  CHECK(napi_get_value_int32(env, argv[2], &len));
  CHECK(napi_get_value_string_utf8(env, argv[3], address, sizeof address, &alen));
  CHECK(napi_get_value_int32(env, argv[4], &port));
  int result = 0;
  struct sockaddr_storage sa;
  socklen_t salen;
  if (s->closing) result = -EBADF;
  else if (len < 0 || (size_t)len > size) result = -EINVAL;
  else if (parse_address(s->family, address, port, &sa, &salen) != 0) result = -EINVAL;
  else {
    ssize_t r;
    do r = sendto(s->fd, data, (size_t)len, MSG_DONTWAIT, (struct sockaddr *)&sa, salen);
    while (r < 0 && errno == EINTR);
    if (r < 0) {
      result = -errno;
      s->send_errors++;
    }
  }
  CHECK(napi_create_int32(env, result, &out));
  return out;
}

// addressText(handle, index) -> the source address of datagram `index` of the current batch as text
// (inet_ntop: the same form libuv gives node:dgram's rinfo.address).
static napi_value AddressText(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  batch_socket *s = unwrap(env, argv[0]);
  if (!s) return NULL;
  int32_t i;
  CHECK(napi_get_value_int32(env, argv[1], &i));
  char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = "";
  if (!s->closing && i >= 0 && i < s->batch) {
    const struct sockaddr_storage *a = &s->raddr[i];
    if (a->ss_family == AF_INET6) {
      const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
      inet_ntop(AF_INET6, &a6->sin6_addr, text, INET6_ADDRSTRLEN);
      // A link-local client's zone, as node:dgram reports it (fe80::1%eth0).
      char ifname[IF_NAMESIZE];
      if (a6->sin6_scope_id != 0 && if_indextoname(a6->sin6_scope_id, ifname)) {
        size_t l = strlen(text);
        snprintf(text + l, sizeof text - l, "%%%s", ifname);
      }
    } else {
      inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, text, sizeof text);
    }
  }
  CHECK(napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &out));
  return out;
}

// close(handle): stop reading and close the socket (on the next loop turn). Idempotent.
static napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  batch_socket *s = unwrap(env, argv[0]);
  if (!s) return NULL;
  close_socket(s);
  return NULL;
}

// unref(handle): the socket no longer keeps the event loop alive (upstream sockets, like an
// unref'd node:dgram socket).
static napi_value Unref(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  batch_socket *s = unwrap(env, argv[0]);
  if (!s) return NULL;
  if (!s->closing) uv_unref((uv_handle_t *)&s->poll);
  return NULL;
}

// stats(handle) -> [sendErrors, truncated]
static napi_value Stats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out, v;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  batch_socket *s = unwrap(env, argv[0]);
  if (!s) return NULL;
  CHECK(napi_create_array_with_length(env, 2, &out));
  CHECK(napi_create_double(env, (double)s->send_errors, &v));
  CHECK(napi_set_element(env, out, 0, v));
  CHECK(napi_create_double(env, (double)s->truncated, &v));
  CHECK(napi_set_element(env, out, 1, v));
  return out;
}

// notify(path, text) -> 0 or -errno: one datagram to a Unix socket, for systemd's NOTIFY_SOCKET
// (sd_notify(3)): node:dgram has no Unix datagram sockets. A path starting with "@" is in the
// abstract namespace.
static napi_value Notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  struct sockaddr_un sa;
  char path[sizeof sa.sun_path + 1];
  char text[4096];
  size_t plen, tlen;
  CHECK(napi_get_value_string_utf8(env, argv[0], path, sizeof path, &plen));
  CHECK(napi_get_value_string_utf8(env, argv[1], text, sizeof text, &tlen));
  int result = 0;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (plen == 0 || plen >= sizeof sa.sun_path) result = -EINVAL;
  else {
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@') sa.sun_path[0] = 0;
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) result = -errno;
    else {
      ssize_t r;
      do r = sendto(fd, text, tlen, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
      while (r < 0 && errno == EINTR);
      if (r < 0) result = -errno;
      close(fd);
    }
  }
  CHECK(napi_create_int32(env, result, &out));
  return out;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, Open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendTo", NULL, SendTo, NULL, NULL, NULL, napi_enumerable, NULL},
      {"addressText", NULL, AddressText, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, Close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unref", NULL, Unref, NULL, NULL, NULL, napi_enumerable, NULL},
      {"stats", NULL, Stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"notify", NULL, Notify, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
