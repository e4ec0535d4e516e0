/*
 * tests/unit/gateway/check.c — the endpoint's request checks
 * (gateway/check.c): JSON-RPC message shape (gw_msg_invalid), the
 * 2026-07-28 mirrored headers (gw_stateless_check), Host/Origin against
 * the configured hosts (gw_host_allowed), protocol revisions.
 */
#include "tests/unit/unit.h"
#include "gateway/endpoint_int.h"
#include <stdlib.h>

static bool
invalid(const char *text)
{
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    bool r;

    if (j == NULL) {
        UNIT_TRUE(!"test JSON parses");
        return false;
    }
    r = gw_msg_invalid(j);
    json_decref(j);
    return r;
}

static void
test_msg_invalid(void)
{
    /* taken: requests, notifications, responses */
    UNIT_TRUE(!invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}"));
    UNIT_TRUE(!invalid("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"ping\",\"params\":{}}"));
    UNIT_TRUE(!invalid("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"));
    UNIT_TRUE(!invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}"));
    UNIT_TRUE(!invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":1,\"message\":\"x\"}}"));
    /* a null id passes the shape check (the endpoint refuses it as a request id itself) */
    UNIT_TRUE(!invalid("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}"));
    /* refused */
    UNIT_TRUE(invalid("[]"));
    UNIT_TRUE(invalid("\"ping\""));
    UNIT_TRUE(invalid("{\"id\":1,\"method\":\"ping\"}"));                         /* no jsonrpc */
    UNIT_TRUE(invalid("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}"));
    UNIT_TRUE(invalid("{\"jsonrpc\":2.0,\"id\":1,\"method\":\"ping\"}"));
    UNIT_TRUE(invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}"));           /* method not a string */
    UNIT_TRUE(invalid("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}"));  /* id neither string nor integer */
    UNIT_TRUE(invalid("{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}"));
    UNIT_TRUE(invalid("{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"ping\"}"));
    UNIT_TRUE(invalid("{\"jsonrpc\":\"2.0\"}"));                                  /* neither method nor id */
    UNIT_TRUE(invalid("{\"jsonrpc\":\"2.0\",\"id\":1}"));                         /* a response without result or error */
    UNIT_TRUE(invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"error\":{\"code\":1,\"message\":\"x\"}}"));  /* both */
}

static void
test_valid_id_and_accepts(void)
{
    json_t *s = json_string("x"), *i = json_integer(3), *r = json_real(1.0), *n = json_null();

    UNIT_TRUE(gw_valid_id(s));
    UNIT_TRUE(gw_valid_id(i));
    UNIT_TRUE(!gw_valid_id(r));
    UNIT_TRUE(!gw_valid_id(n));
    UNIT_TRUE(!gw_valid_id(NULL));
    json_decref(s);
    json_decref(i);
    json_decref(r);
    json_decref(n);
    UNIT_TRUE(gw_accepts("application/json, text/event-stream", "text/event-stream"));
    UNIT_TRUE(gw_accepts("*/*", "application/json"));
    UNIT_TRUE(gw_accepts("Application/JSON", "application/json"));
    UNIT_TRUE(!gw_accepts("text/html", "application/json"));
    UNIT_TRUE(!gw_accepts(NULL, "application/json"));
}

static void
test_proto(void)
{
    UNIT_TRUE(gw_proto_supported("2025-03-26"));
    UNIT_TRUE(gw_proto_supported("2025-06-18"));
    UNIT_TRUE(gw_proto_supported("2025-11-25"));
    UNIT_TRUE(gw_proto_supported("2026-07-28"));
    UNIT_TRUE(!gw_proto_supported("2024-11-05"));
    UNIT_TRUE(!gw_proto_supported(NULL));
    UNIT_TRUE(gw_proto_is_stateless("2026-07-28"));
    UNIT_TRUE(!gw_proto_is_stateless("2025-11-25"));
    UNIT_EQ_INT(gw_proto_rev("2025-03-26"), GW_REV_2025_03_26);
    UNIT_EQ_INT(gw_proto_rev("2026-07-28"), GW_REV_2026_07_28);
    UNIT_EQ_INT(gw_proto_rev("2024-11-05"), 0);
    UNIT_EQ_INT(gw_proto_rev(NULL), 0);
}

/* ---- 2026-07-28 headers */

static struct gh_arena *A;

static const char *
check(const struct gw_stateless_hdrs *h, const char *method, const char *params, const char *name_param,
      bool *unsupported)
{
    json_t *p = gh_arena_json(A, json_loads(params, 0, NULL));

    UNIT_TRUE(p != NULL);
    return gw_stateless_check(A, h, method, p, name_param, unsupported);
}

#define META "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}"

static void
test_stateless_headers_agree(void)
{
    struct gw_stateless_hdrs h = { "2026-07-28", "tools/call", "alpha__echo", 1, 1, 1 };
    bool un = true;

    UNIT_TRUE(check(&h, "tools/call", "{\"name\":\"alpha__echo\"," META "}", "name", &un) == NULL);
    UNIT_TRUE(!un);
    /* the Base64 form of the same name ("alpha__echo") */
    h.name = "=?base64?YWxwaGFfX2VjaG8=?=";
    UNIT_TRUE(check(&h, "tools/call", "{\"name\":\"alpha__echo\"," META "}", "name", &un) == NULL);
    /* a method without a mirrored param needs no Mcp-Name */
    h = (struct gw_stateless_hdrs){ "2026-07-28", "tools/list", NULL, 1, 1, 0 };
    UNIT_TRUE(check(&h, "tools/list", "{" META "}", NULL, &un) == NULL);
    /* resources/read mirrors the uri */
    h = (struct gw_stateless_hdrs){ "2026-07-28", "resources/read", "file:///a", 1, 1, 1 };
    UNIT_TRUE(check(&h, "resources/read", "{\"uri\":\"file:///a\"," META "}", "uri", &un) == NULL);
    /* whitespace around a value is not part of it (RFC 9110 §5.5) */
    h = (struct gw_stateless_hdrs){ " 2026-07-28\t", "  tools/call ", "\talpha__echo  ", 1, 1, 1 };
    UNIT_TRUE(check(&h, "tools/call", "{\"name\":\"alpha__echo\"," META "}", "name", &un) == NULL);
    h.method = " Tools/call ";
    UNIT_EQ_STR(check(&h, "tools/call", "{\"name\":\"alpha__echo\"," META "}", "name", &un),
                "Mcp-Method header does not match the body");
}

static void
test_stateless_headers_refused(void)
{
    const char *body = "{\"name\":\"alpha__echo\"," META "}";
    struct gw_stateless_hdrs ok = { "2026-07-28", "tools/call", "alpha__echo", 1, 1, 1 }, h;
    bool un = false;

    h = ok, h.nversion = 2;
    UNIT_EQ_STR(check(&h, "tools/call", body, "name", &un), "MCP-Protocol-Version header repeated");
    h = ok, h.nmethod = 2;
    UNIT_EQ_STR(check(&h, "tools/call", body, "name", &un), "Mcp-Method header repeated");
    h = ok, h.nname = 2;
    UNIT_EQ_STR(check(&h, "tools/call", body, "name", &un), "Mcp-Name header repeated");
    h = ok, h.method = "tools/call\x7f";
    UNIT_EQ_STR(check(&h, "tools/call", body, "name", &un), "a header value holds a character header values may not");
    h = ok;
    UNIT_EQ_STR(check(&h, "tools/call", "{\"name\":\"alpha__echo\"}", "name", &un),
                "the request's _meta carries no io.modelcontextprotocol/protocolVersion");
    h = ok, h.version = NULL, h.nversion = 0;
    UNIT_EQ_STR(check(&h, "tools/call", body, "name", &un), "MCP-Protocol-Version header missing");
    h = ok, h.version = "2025-11-25";
    UNIT_EQ_STR(check(&h, "tools/call", body, "name", &un), "MCP-Protocol-Version header does not match _meta");
    h = ok, h.method = NULL, h.nmethod = 0;
    UNIT_EQ_STR(check(&h, "tools/call", body, "name", &un), "Mcp-Method header missing");
    h = ok, h.method = "tools/list";
    UNIT_EQ_STR(check(&h, "tools/call", body, "name", &un), "Mcp-Method header does not match the body");
    h = ok, h.name = NULL, h.nname = 0;
    UNIT_EQ_STR(check(&h, "tools/call", body, "name", &un), "Mcp-Name header missing");
    h = ok, h.name = "alpha__other";
    UNIT_EQ_STR(check(&h, "tools/call", body, "name", &un), "Mcp-Name header does not match the body");
    /* Base64 that is not canonical (a padding bit set), or a raw non-ASCII byte */
    h = ok, h.name = "=?base64?YWxwaGFfX2VjaG9=?=";
    UNIT_EQ_STR(check(&h, "tools/call", body, "name", &un), "Mcp-Name header is not a valid header value");
    h = ok, h.name = "alpha__\xc3\xa9";
    UNIT_EQ_STR(check(&h, "tools/call", body, "name", &un), "Mcp-Name header is not a valid header value");
    /* a decoded NUL byte does not end the comparison early */
    h = ok, h.name = "=?base64?YWxwaGFfX2VjaG8AeA==?=";
    UNIT_EQ_STR(check(&h, "tools/call", body, "name", &un), "Mcp-Name header does not match the body");
    UNIT_TRUE(!un);
    /* a version we do not speak, header and _meta agreeing: unsupported, not a mismatch */
    h = ok, h.version = "2099-01-01";
    UNIT_TRUE(check(&h, "tools/call",
                    "{\"name\":\"alpha__echo\",\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2099-01-01\"}}",
                    "name", &un) == NULL);
    UNIT_TRUE(un);
}

static void
test_header_value(void)
{
    size_t n = 0;
    char *v;

    UNIT_TRUE(gw_header_chars_ok("tools/call \t~"));
    UNIT_TRUE(!gw_header_chars_ok("a\x01"));
    UNIT_TRUE(!gw_header_chars_ok("caf\xc3\xa9"));
    v = gw_header_value(A, "plain", &n);
    UNIT_EQ_STR(v, "plain");
    UNIT_EQ_INT(n, 5);
    v = gw_header_value(A, "=?base64?Y2Fmw6k=?=", &n);     /* "café" */
    UNIT_TRUE(v && n == 5 && !memcmp(v, "caf\xc3\xa9", 5));
    v = gw_header_value(A, "=?base64?Y2Fmw6k?=", &n);      /* unpadded: the same value */
    UNIT_TRUE(v && n == 5 && !memcmp(v, "caf\xc3\xa9", 5));
    UNIT_TRUE(gw_header_value(A, "=?base64?Y2Fmw6k==?=", &n) == NULL);   /* padding past the group */
    /* too short for the form: a plain value */
    v = gw_header_value(A, "=?base64?=", &n);
    UNIT_EQ_STR(v, "=?base64?=");
}

/* ---- Host / Origin */

static void
test_host_allowed_default(void)
{
    gh_cfg.allowed_hosts = (char *)"";
    gh_cfg.public_url = (char *)"https://Gate.Example.com:8443/base";
    UNIT_TRUE(gw_host_allowed("localhost"));
    UNIT_TRUE(gw_host_allowed("localhost:8080"));
    UNIT_TRUE(gw_host_allowed("127.0.0.1:9"));
    UNIT_TRUE(gw_host_allowed("[::1]:8080"));
    UNIT_TRUE(gw_host_allowed("gate.example.com"));
    UNIT_TRUE(gw_host_allowed("GATE.example.com:443"));     /* the public host, any port */
    UNIT_TRUE(!gw_host_allowed("evil.example.com"));
    UNIT_TRUE(!gw_host_allowed("gate.example.com.evil.net"));
    UNIT_TRUE(!gw_host_allowed("127.0.0.2"));
    UNIT_TRUE(!gw_host_allowed(""));
    UNIT_TRUE(gw_origin_allowed("http://localhost:3000"));
    UNIT_TRUE(gw_origin_allowed("https://gate.example.com"));
    UNIT_TRUE(!gw_origin_allowed("https://evil.example.com"));
    UNIT_TRUE(!gw_origin_allowed("https://gate.example.com/path"));
    UNIT_TRUE(!gw_origin_allowed("ftp://gate.example.com"));
    UNIT_TRUE(!gw_origin_allowed("null"));
    UNIT_TRUE(!gw_origin_allowed("gate.example.com"));
}

static void
test_host_allowed_list(void)
{
    gh_cfg.allowed_hosts = (char *)" mcp.example.com , [fd00::1]:8443,other.net:81";
    gh_cfg.public_url = (char *)"https://gate.example.com";
    UNIT_TRUE(gw_host_allowed("mcp.example.com"));
    UNIT_TRUE(gw_host_allowed("MCP.example.com:9999"));     /* an entry without a port: any port */
    UNIT_TRUE(gw_host_allowed("[FD00::1]:8443"));
    UNIT_TRUE(!gw_host_allowed("[fd00::1]:8444"));
    UNIT_TRUE(gw_host_allowed("other.net:81"));
    UNIT_TRUE(!gw_host_allowed("other.net"));               /* the entry names port 81 */
    /* the list replaces the defaults: neither loopback nor the public host */
    UNIT_TRUE(!gw_host_allowed("localhost"));
    UNIT_TRUE(!gw_host_allowed("gate.example.com"));
    gh_cfg.allowed_hosts = (char *)"";
}

int
main(void)
{
    A = gh_arena_new(0);
    UNIT_RUN(test_msg_invalid);
    UNIT_RUN(test_valid_id_and_accepts);
    UNIT_RUN(test_proto);
    UNIT_RUN(test_stateless_headers_agree);
    UNIT_RUN(test_stateless_headers_refused);
    UNIT_RUN(test_header_value);
    UNIT_RUN(test_host_allowed_default);
    UNIT_RUN(test_host_allowed_list);
    gh_arena_free(A);
    return UNIT_DONE();
}
