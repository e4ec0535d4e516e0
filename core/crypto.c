/*
 * core/crypto.c — thin wrappers over OpenSSL 3: randomness, SHA-256,
 * encodings, constant-time comparison, and AES-256-GCM sealing of secrets
 * at rest under the server key.
 */
#include "core/core.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

static unsigned char server_key[32];
static bool server_key_set;
static char server_key_origin[4200];    /* the setting or file it came from */
static bool server_key_created;         /* this process wrote the key file */

int
gh_random_bytes(void *buf, size_t n)
{
    return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

void
gh_hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int
gh_hex_decode(const char *in, unsigned char *out, size_t outlen)
{
    if (strlen(in) != 2 * outlen)
        return -1;
    for (size_t i = 0; i < outlen; i++) {
        int h = gh_hex_digit(in[2 * i]), l = gh_hex_digit(in[2 * i + 1]);
        if (h < 0 || l < 0)
            return -1;
        out[i] = (unsigned char)(h << 4 | l);
    }
    return 0;
}

/* SHA-256 is fetched from the provider once: EVP_sha256() would make
 * EVP_Digest look the implementation up again on every call (OpenSSL 3),
 * and a token is hashed on every authenticated request. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void
gh_sha256(const void *in, size_t n, unsigned char out[32])
{
    unsigned int len = 32;

    pthread_once(&sha256_once, sha256_fetch);
    EVP_Digest(in, n, out, &len, sha256_md ? sha256_md : EVP_sha256(), NULL);
}

void
gh_sha256_hex(const char *s, char out[65])
{
    unsigned char d[32];

    gh_sha256(s, strlen(s), d);
    gh_hex_encode(d, 32, out);
}

bool
gh_ct_streq(const char *a, const char *b)
{
    size_t la, lb;

    if (a == NULL || b == NULL)
        return false;
    la = strlen(a);
    lb = strlen(b);
    if (la != lb)
        return false;
    return CRYPTO_memcmp(a, b, la) == 0;
}

char *
gh_b64url_encode(struct gh_arena *a, const unsigned char *in, size_t n)
{
    size_t cap = 4 * ((n + 2) / 3) + 1;
    char *out = gh_arena_alloc(a, cap);
    int len;

    if (out == NULL)
        return NULL;
    len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (int i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    return out;
}

static int
sextet(char c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26
         : c >= '0' && c <= '9' ? c - '0' + 52 : c == '+' ? 62 : c == '/' ? 63 : -1;
}

int
gh_b64_decode(struct gh_arena *a, const char *in, size_t n, unsigned char **out, size_t *outlen)
{
    size_t data = n, padded;
    int kind = 0, len;
    char *tmp;
    unsigned char *buf;

    while (data > 0 && in[data - 1] == '=')
        data--;
    /* padding completes the last group of four, or there is none */
    if ((data < n && (n % 4 || n - data > 2)) || data % 4 == 1)
        return -1;
    padded = (data + 3) / 4 * 4;
    tmp = gh_arena_alloc(a, padded + 1);
    buf = gh_arena_alloc(a, padded / 4 * 3 + 1);
    if (tmp == NULL || buf == NULL)
        return -1;
    for (size_t i = 0; i < data; i++) {
        char c = in[i];
        int k = c == '+' || c == '/' ? 1 : c == '-' || c == '_' ? 2 : 0;
        if (k == 2)
            c = c == '-' ? '+' : '/';
        if (sextet(c) < 0 || (k && kind && k != kind))       /* '=' inside, another byte, two alphabets */
            return -1;
        if (k)
            kind = k;
        tmp[i] = c;
    }
    /* canonical: the bits the last character carries beyond the data are zero */
    if (data % 4 && (sextet(tmp[data - 1]) & (data % 4 == 2 ? 0x0f : 0x03)))
        return -1;
    for (size_t i = data; i < padded; i++)
        tmp[i] = '=';
    len = EVP_DecodeBlock(buf, (unsigned char *)tmp, (int)padded);
    if (len < 0)
        return -1;
    *outlen = (size_t)len - (padded - data);     /* EVP counts a padded group whole */
    buf[*outlen] = '\0';
    *out = buf;
    return 0;
}

char *
gh_token_hex(struct gh_arena *a, const char *prefix, size_t nbytes)
{
    unsigned char raw[64];
    size_t pl = strlen(prefix);
    char *out;

    if (nbytes > sizeof(raw) || gh_random_bytes(raw, nbytes) < 0)
        return NULL;
    out = gh_arena_alloc(a, pl + 2 * nbytes + 1);
    if (out) {
        memcpy(out, prefix, pl);
        gh_hex_encode(raw, nbytes, out + pl);
    }
    gh_wipe(raw, sizeof(raw));
    return out;
}

void
gh_wipe(void *p, size_t n)
{
    if (p)
        OPENSSL_cleanse(p, n);
}

/* ---- server key */

/* Reads the key file: a regular file that neither group nor others may
 * read or write (as OpenSSH and PostgreSQL ask of a private key; the group
 * may read when root owns it, PostgreSQL's exception for keys provisioned
 * by root), holding 64 hex digits and at most trailing white space. */
static int
key_file_read(int fd, const char *path, unsigned char key[32], struct gh_err *e)
{
    char buf[128];
    size_t len = 0;
    struct stat st;
    ssize_t got;
    int rc = -1;

    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        gh_err_set(e, 500, "config", "", "%s: not a regular file", path);
        snprintf(e->msg, sizeof(e->msg), "the server key file %.180s is not a regular file", path);
        goto out;
    }
    if ((st.st_mode & (S_IRWXO | S_IWGRP | S_IXGRP)) || ((st.st_mode & S_IRGRP) && st.st_uid != 0)) {
        gh_err_set(e, 500, "config", "", "%s: mode %04o", path, (unsigned)(st.st_mode & 07777));
        snprintf(e->msg, sizeof(e->msg),
                 "the server key file %.150s is open to other users (mode %04o); chmod 600 it", path,
                 (unsigned)(st.st_mode & 07777));
        goto out;
    }
    while (len < sizeof(buf) && (got = read(fd, buf + len, sizeof(buf) - len)) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int err = errno;
            gh_err_set(e, 500, "config", "", "%s: %s", path, strerror(err));
            snprintf(e->msg, sizeof(e->msg), "cannot read the server key file %.150s: %s", path, strerror(err));
            goto out;
        }
        len += (size_t)got;
    }
    while (len > 64 && len < sizeof(buf) &&
           (buf[len - 1] == ' ' || buf[len - 1] == '\t' || buf[len - 1] == '\r' || buf[len - 1] == '\n'))
        len--;
    if (len != 64 || (buf[64] = '\0', gh_hex_decode(buf, key, 32)) < 0) {
        gh_err_set(e, 500, "config", "", "%s: bad contents", path);
        snprintf(e->msg, sizeof(e->msg), "the server key file %.150s must hold 64 hex digits and nothing else",
                 path);
        goto out;
    }
    rc = 0;
out:
    gh_wipe(buf, sizeof(buf));
    return rc;
}

/* Generates the key file so that it only ever appears whole: the key is
 * written to a private temporary file and linked into place, which fails
 * when another process (a concurrent first start) got there first; that
 * key is read then.  *created: this process's key was linked. */
static int
key_file_create(const char *path, unsigned char key[32], bool *created, struct gh_err *e)
{
    char tmp[4200] = "", hex[65] = "";
    unsigned char raw[32];
    int fd = -1, rc = -1, err;

    *created = false;
    mkdir(gh_cfg.data_dir, 0755);
    snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
    fd = mkostemp(tmp, O_CLOEXEC);      /* mode 0600 */
    if (fd < 0) {
        tmp[0] = '\0';
        goto fail;
    }
    if (gh_random_bytes(raw, 32) < 0) {
        errno = EIO;
        goto fail;
    }
    gh_hex_encode(raw, 32, hex);
    if (write(fd, hex, 64) != 64 || fsync(fd) < 0)
        goto fail;
    if (link(tmp, path) == 0) {
        int dfd = open(gh_cfg.data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);         /* the new name survives a crash too */
            close(dfd);
        }
        memcpy(key, raw, 32);
        *created = true;
        rc = 0;
        goto out;
    }
    if (errno != EEXIST)
        goto fail;
    close(fd);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        goto fail;
    rc = key_file_read(fd, path, key, e);
    goto out;
fail:
    err = errno;
    gh_err_set(e, 500, "config", "", "%s: %s", tmp[0] ? tmp : path, strerror(err));
    snprintf(e->msg, sizeof(e->msg), "cannot create the server key file %.150s: %s", path, strerror(err));
out:
    if (fd >= 0)
        close(fd);
    if (tmp[0])
        unlink(tmp);
    gh_wipe(raw, sizeof(raw));
    gh_wipe(hex, sizeof(hex));
    return rc;
}

int
gh_server_key_init(struct gh_err *e)
{
    char path[4096];
    unsigned char key[32];
    bool created = false;
    int fd = -1, rc = -1;

    /* a key this call cannot load is no key: nothing is sealed with a stale one */
    gh_wipe(server_key, sizeof(server_key));
    server_key_set = false;
    if (gh_cfg.server_key && gh_cfg.server_key[0]) {
        snprintf(server_key_origin, sizeof(server_key_origin), "GATEHOUSE_SERVER_KEY");
        if (gh_hex_decode(gh_cfg.server_key, key, 32) < 0)
            gh_err_set(e, 400, "config", "GATEHOUSE_SERVER_KEY: expected 64 hex digits", NULL);
        else
            rc = 0;
        goto out;
    }
    snprintf(path, sizeof(path), "%s/server.key", gh_cfg.data_dir);
    snprintf(server_key_origin, sizeof(server_key_origin), "the key file %s (GATEHOUSE_SERVER_KEY is not set)",
             path);
    /* O_NONBLOCK: a FIFO put there is refused below, not waited on */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0) {
        rc = key_file_read(fd, path, key, e);
    } else if (errno == ENOENT) {
        rc = key_file_create(path, key, &created, e);
    } else {
        int err = errno;
        gh_err_set(e, 500, "config", "", "%s: %s", path, strerror(err));
        snprintf(e->msg, sizeof(e->msg), "cannot read the server key file %.150s: %s", path, strerror(err));
    }
out:
    if (rc == 0) {
        memcpy(server_key, key, 32);
        server_key_set = true;
        server_key_created = created;
    }
    if (fd >= 0)
        close(fd);
    gh_wipe(key, sizeof(key));
    return rc;
}

#define KEY_CHECK_LABEL "gatehouse server key check v1"

int
gh_server_key_check_value(char out[65])
{
    unsigned char mac[32];
    unsigned int len = sizeof(mac);

    out[0] = '\0';
    if (!server_key_set ||
        HMAC(EVP_sha256(), server_key, sizeof(server_key), (const unsigned char *)KEY_CHECK_LABEL,
             strlen(KEY_CHECK_LABEL), mac, &len) == NULL || len != sizeof(mac))
        return -1;
    gh_hex_encode(mac, sizeof(mac), out);
    return 0;
}

const char *
gh_server_key_origin(void)
{
    return server_key_origin[0] ? server_key_origin : "GATEHOUSE_SERVER_KEY";
}

void
gh_server_key_forget(void)
{
    char path[4096];

    gh_wipe(server_key, sizeof(server_key));
    server_key_set = false;
    if (server_key_created) {
        /* generated by this run and refused: leave no stray key behind */
        snprintf(path, sizeof(path), "%s/server.key", gh_cfg.data_dir);
        unlink(path);
        server_key_created = false;
    }
}

/* sealed = b64url(iv[12] | tag[16] | ciphertext); aad binds the context
 * (e.g. "connector:<id>:header") so a sealed value cannot be moved. */
char *
gh_seal(struct gh_arena *a, const void *pt, size_t n, const char *aad)
{
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char *buf = NULL;
    char *out = NULL;
    int len = 0, fin = 0;

    if (!server_key_set)
        return NULL;
    buf = gh_arena_alloc(a, 28 + n + 16);
    ctx = EVP_CIPHER_CTX_new();
    if (buf == NULL || ctx == NULL || gh_random_bytes(buf, 12) < 0)
        goto out;
    if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, server_key, buf) != 1)
        goto out;
    if (aad && EVP_EncryptUpdate(ctx, NULL, &len, (const unsigned char *)aad, (int)strlen(aad)) != 1)
        goto out;
    if (EVP_EncryptUpdate(ctx, buf + 28, &len, pt, (int)n) != 1 ||
        EVP_EncryptFinal_ex(ctx, buf + 28 + len, &fin) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, buf + 12) != 1)
        goto out;
    out = gh_b64url_encode(a, buf, 28 + (size_t)len + (size_t)fin);
out:
    if (buf)
        gh_wipe(buf + 28, n);
    EVP_CIPHER_CTX_free(ctx);
    return out;
}

int
gh_unseal(struct gh_arena *a, const char *sealed, const char *aad,
          unsigned char **pt, size_t *n)
{
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char *raw, *out;
    size_t rawlen;
    int len = 0, fin = 0, rc = -1;

    if (!server_key_set || gh_b64_decode(a, sealed, strlen(sealed), &raw, &rawlen) < 0 || rawlen < 28)
        return -1;
    out = gh_arena_alloc(a, rawlen - 28 + 1);
    ctx = EVP_CIPHER_CTX_new();
    if (out == NULL || ctx == NULL)
        goto out;
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, server_key, raw) != 1)
        goto out;
    if (aad && EVP_DecryptUpdate(ctx, NULL, &len, (const unsigned char *)aad, (int)strlen(aad)) != 1)
        goto out;
    if (EVP_DecryptUpdate(ctx, out, &len, raw + 28, (int)(rawlen - 28)) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, raw + 12) != 1 ||
        EVP_DecryptFinal_ex(ctx, out + len, &fin) != 1) {
        gh_wipe(out, rawlen - 28);
        goto out;
    }
    out[len + fin] = '\0';
    *pt = out;
    *n = (size_t)(len + fin);
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}
