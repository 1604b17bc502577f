/*
 * A scan of an encoded OTLP ExportTraceServiceRequest into columns, for the trace receiver's
 * hot path (ingest/decoders/otlp_native.py loads this with ctypes; no Python API is used).
 *
 * It reads only the plain shapes real exporters send and never judges a request: whatever it
 * does not take (a group, a field of a known number with another wire type, a sub-message
 * sent twice, an event, a link, a span the receiver would reject, a table that is full) makes
 * it return a negative code, and the caller then decodes the request with the protobuf
 * runtime, which stays the judge of what is valid. Every read is bounds-checked against the
 * end of the enclosing message; nothing is written past the capacities the caller passes.
 *
 * Wire format: a field is a varint tag (field number << 3 | wire type), then the value: wire
 * type 0 a varint, 1 eight bytes (little-endian), 2 a varint length and that many bytes,
 * 5 four bytes. Field numbers are those of opentelemetry/proto/trace/v1/trace.proto.
 */
#include <stdint.h>
#include <string.h>

#define SCAN_FALLBACK (-1) /* the protobuf runtime decodes this request */
#define SCAN_FULL (-2)     /* a table is full: call again with larger ones */

/* Span columns, one row of SPAN_COLS int64 per span. */
enum {
    S_SCOPE,        /* index into the scope table */
    S_TRACE,        /* offset of the 16-byte trace id */
    S_SPAN,         /* offset of the 8-byte span id */
    S_PARENT,       /* offset of the 8-byte parent span id, -1 when none */
    S_NAME,         /* offset and length of the name (UTF-8 not checked here) */
    S_NAME_LEN,
    S_KIND,         /* as int32 */
    S_START,
    S_END,
    S_STATUS,       /* status code as int32 */
    S_MESSAGE,      /* offset and length of the status message */
    S_MESSAGE_LEN,
    S_STATE,        /* offset and length of the trace state */
    S_STATE_LEN,
    S_FLAGS,
    S_ATTR_FIRST,   /* the span's attributes: rows of the attribute table */
    S_ATTR_COUNT,
    SPAN_COLS
};
/* Scope columns: resource index, scope message offset and length (-1, 0 when absent). */
enum { C_RESOURCE, C_SCOPE, C_SCOPE_LEN, SCOPE_COLS };
/* Resource columns: resource message offset and length (-1, 0 when absent). */
enum { R_RESOURCE, R_RESOURCE_LEN, RESOURCE_COLS };
/* Attribute columns: offset and length of the encoded KeyValue. */
enum { A_OFF, A_LEN, ATTR_COLS };
/* counts[]: spans, scopes, resources, attributes. */

#define MAX_TIME_NS 0x7FFFFFFFFFFFFFFFULL

typedef struct {
    const uint8_t *base;
    int64_t *spans, *scopes, *resources, *attrs;
    int64_t cap_spans, cap_scopes, cap_resources, cap_attrs;
    int64_t n_spans, n_scopes, n_resources, n_attrs;
} scan_t;

/* A varint at *p (below end) into *out; advances *p. 0, or -1 when cut short or too long. */
static int varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
    uint64_t value = 0;
    const uint8_t *q = *p;
    for (int shift = 0; shift < 70 && q < end; shift += 7) {
        uint8_t byte = *q++;
        value |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            if (shift == 63 && byte > 1) return -1; /* beyond 64 bits */
            *p = q;
            *out = value;
            return 0;
        }
    }
    return -1;
}

static uint64_t le64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v; /* (x86-64 and aarch64 Linux are little-endian) */
}

static uint32_t le32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/*
 * One field at *p: its number, wire type, and where its value is. For wire type 2 *data and
 * *len delimit the bytes; for 0 *value is the varint; for 1 and 5 *data points at the bytes.
 * Advances *p past the field. 0, or -1 for anything else (groups, cut short).
 */
static int field(const uint8_t **p, const uint8_t *end, uint32_t *number, int *wire,
                 const uint8_t **data, uint64_t *len, uint64_t *value) {
    uint64_t tag;
    if (varint(p, end, &tag) || tag >> 3 == 0 || tag >> 3 > 0x1FFFFFFF) return -1;
    *number = (uint32_t)(tag >> 3);
    *wire = (int)(tag & 7);
    switch (*wire) {
    case 0:
        return varint(p, end, value);
    case 1:
        if (end - *p < 8) return -1;
        *data = *p;
        *p += 8;
        return 0;
    case 2:
        if (varint(p, end, len) || *len > (uint64_t)(end - *p)) return -1;
        *data = *p;
        *p += *len;
        return 0;
    case 5:
        if (end - *p < 4) return -1;
        *data = *p;
        *p += 4;
        return 0;
    default:
        return -1;
    }
}

static int all_zero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static int status(const scan_t *s, const uint8_t *p, const uint8_t *end, int64_t *row) {
    while (p < end) {
        uint32_t number;
        int wire;
        const uint8_t *data = 0;
        uint64_t len = 0, value = 0;
        if (field(&p, end, &number, &wire, &data, &len, &value)) return SCAN_FALLBACK;
        if (number == 2) {
            if (wire != 2) return SCAN_FALLBACK;
            row[S_MESSAGE] = data - s->base;
            row[S_MESSAGE_LEN] = (int64_t)len;
        } else if (number == 3) {
            if (wire != 0) return SCAN_FALLBACK;
            row[S_STATUS] = (int32_t)(uint32_t)value;
        }
    }
    return 0;
}

static int span(scan_t *s, const uint8_t *p, const uint8_t *end, int64_t scope) {
    if (s->n_spans >= s->cap_spans) return SCAN_FULL;
    int64_t *row = s->spans + s->n_spans * SPAN_COLS;
    const uint8_t *trace = 0, *id = 0, *parent = 0;
    uint64_t trace_len = 0, id_len = 0, parent_len = 0;
    uint64_t start = 0, stop = 0;
    int has_status = 0;
    for (int c = 0; c < SPAN_COLS; c++) row[c] = 0;
    row[S_SCOPE] = scope;
    row[S_ATTR_FIRST] = s->n_attrs;
    while (p < end) {
        uint32_t number;
        int wire;
        const uint8_t *data = 0;
        uint64_t len = 0, value = 0;
        if (field(&p, end, &number, &wire, &data, &len, &value)) return SCAN_FALLBACK;
        switch (number) {
        case 1: /* trace_id */
        case 2: /* span_id */
        case 3: /* trace_state */
        case 4: /* parent_span_id */
        case 5: /* name */
            if (wire != 2) return SCAN_FALLBACK;
            if (number == 1) trace = data, trace_len = len;
            else if (number == 2) id = data, id_len = len;
            else if (number == 3) row[S_STATE] = data - s->base, row[S_STATE_LEN] = (int64_t)len;
            else if (number == 4) parent = data, parent_len = len;
            else row[S_NAME] = data - s->base, row[S_NAME_LEN] = (int64_t)len;
            break;
        case 6: /* kind */
            if (wire != 0) return SCAN_FALLBACK;
            row[S_KIND] = (int32_t)(uint32_t)value;
            break;
        case 7: /* start_time_unix_nano */
        case 8: /* end_time_unix_nano */
            if (wire != 1) return SCAN_FALLBACK;
            if (number == 7) start = le64(data);
            else stop = le64(data);
            break;
        case 9: /* attributes */
            if (wire != 2) return SCAN_FALLBACK;
            if (s->n_attrs >= s->cap_attrs) return SCAN_FULL;
            s->attrs[s->n_attrs * ATTR_COLS + A_OFF] = data - s->base;
            s->attrs[s->n_attrs * ATTR_COLS + A_LEN] = (int64_t)len;
            s->n_attrs++;
            break;
        case 11: /* events */
        case 13: /* links */
            return SCAN_FALLBACK;
        case 15: /* status */
            if (wire != 2 || has_status) return SCAN_FALLBACK;
            has_status = 1;
            if (status(s, data, data + len, row)) return SCAN_FALLBACK;
            break;
        case 16: /* flags */
            if (wire != 5) return SCAN_FALLBACK;
            row[S_FLAGS] = le32(data);
            break;
        default: /* dropped counts, fields from newer versions: skipped */
            break;
        }
    }
    /* what the receiver would reject (or store differently) goes to the runtime path */
    if (trace_len != 16 || all_zero(trace, 16)) return SCAN_FALLBACK;
    if (id_len != 8 || all_zero(id, 8)) return SCAN_FALLBACK;
    if (parent_len != 0 && parent_len != 8) return SCAN_FALLBACK;
    if (start == 0 || stop < start || stop > MAX_TIME_NS) return SCAN_FALLBACK;
    row[S_TRACE] = trace - s->base;
    row[S_SPAN] = id - s->base;
    row[S_PARENT] = (parent_len == 8 && !all_zero(parent, 8)) ? parent - s->base : -1;
    row[S_START] = (int64_t)start;
    row[S_END] = (int64_t)stop;
    row[S_ATTR_COUNT] = s->n_attrs - row[S_ATTR_FIRST];
    s->n_spans++;
    return 0;
}

typedef int (*child_fn)(scan_t *s, const uint8_t *p, const uint8_t *end, int64_t parent);

/*
 * ResourceSpans and ScopeSpans alike: field 1 a sub-message (the resource, the scope) kept
 * as its offset and length in at[0], at[1] (-1, 0 when absent); field 2 repeated children,
 * each read by `child` with this message's row index.
 */
static int container(scan_t *s, const uint8_t *p, const uint8_t *end, int64_t index,
                     int64_t *at, child_fn child) {
    at[0] = -1;
    at[1] = 0;
    while (p < end) {
        uint32_t number;
        int wire;
        const uint8_t *data = 0;
        uint64_t len = 0, value = 0;
        int rc;
        if (field(&p, end, &number, &wire, &data, &len, &value)) return SCAN_FALLBACK;
        if (number == 1) {
            if (wire != 2 || at[0] != -1) return SCAN_FALLBACK;
            at[0] = data - s->base;
            at[1] = (int64_t)len;
        } else if (number == 2) {
            if (wire != 2) return SCAN_FALLBACK;
            if ((rc = child(s, data, data + len, index))) return rc;
        }
    }
    return 0;
}

static int scope_spans(scan_t *s, const uint8_t *p, const uint8_t *end, int64_t resource) {
    if (s->n_scopes >= s->cap_scopes) return SCAN_FULL;
    int64_t index = s->n_scopes++;
    int64_t *row = s->scopes + index * SCOPE_COLS;
    row[C_RESOURCE] = resource;
    return container(s, p, end, index, row + C_SCOPE, span);
}

static int resource_spans(scan_t *s, const uint8_t *p, const uint8_t *end, int64_t unused) {
    (void)unused;
    if (s->n_resources >= s->cap_resources) return SCAN_FULL;
    int64_t index = s->n_resources++;
    return container(s, p, end, index, s->resources + index * RESOURCE_COLS + R_RESOURCE,
                     scope_spans);
}

/*
 * Scans the request buf[0:size) into the tables (capacities in rows); counts[0..3] receive
 * the spans, scopes, resources and attributes found. Returns 0, SCAN_FALLBACK or SCAN_FULL.
 */
int canopy_otlp_scan(const uint8_t *buf, int64_t size, int64_t *spans, int64_t cap_spans,
                     int64_t *scopes, int64_t cap_scopes, int64_t *resources,
                     int64_t cap_resources, int64_t *attrs, int64_t cap_attrs, int64_t *counts) {
    scan_t s = {buf, spans, scopes, resources, attrs, cap_spans, cap_scopes, cap_resources,
                cap_attrs, 0, 0, 0, 0};
    const uint8_t *p = buf, *end = buf + size;
    int rc = 0;
    while (p < end) {
        uint32_t number;
        int wire;
        const uint8_t *data = 0;
        uint64_t len = 0, value = 0;
        if (field(&p, end, &number, &wire, &data, &len, &value)) return SCAN_FALLBACK;
        if (number == 1) {
            if (wire != 2) return SCAN_FALLBACK;
            if ((rc = resource_spans(&s, data, data + len, 0))) return rc;
        }
    }
    counts[0] = s.n_spans;
    counts[1] = s.n_scopes;
    counts[2] = s.n_resources;
    counts[3] = s.n_attrs;
    return 0;
}

/* A 64-bit hash of n bytes, keyed by seed (a per-process random value from the caller). */
static uint64_t hash_bytes(const uint8_t *p, int64_t n, uint64_t seed) {
    const uint64_t k = 0x9E3779B97F4A7C15ULL;
    uint64_t h = seed ^ ((uint64_t)n * k);
    while (n >= 8) {
        h = (h ^ le64(p)) * k;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t tail = 0;
    for (int64_t i = 0; i < n; i++) tail |= (uint64_t)p[i] << (8 * i);
    h = (h ^ tail) * k;
    h ^= h >> 32;
    h *= k;
    return h ^ (h >> 29);
}

#define MAX_PROBES 64

/*
 * Numbers the n byte strings buf[off[i] : off[i] + len[i]] (a row every `stride` int64s of
 * the off and len arrays) by first use: codes[i] is the number of string i, first[d] the
 * first string numbered d. table: table_size int64s (a power of two, at least 2n), any
 * content. Returns the count of distinct strings, or SCAN_FALLBACK when a probe sequence
 * grows too long (the caller then numbers them with a Python dict).
 */
int64_t canopy_number_strings(const uint8_t *buf, const int64_t *off, const int64_t *len,
                              int64_t stride, int64_t n, uint64_t seed, int32_t *codes,
                              int64_t *first, int64_t *table, int64_t table_size) {
    uint64_t mask = (uint64_t)table_size - 1;
    int64_t distinct = 0;
    for (int64_t i = 0; i < table_size; i++) table[i] = -1;
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *p = buf + off[i * stride];
        int64_t m = len[i * stride];
        uint64_t slot = hash_bytes(p, m, seed) & mask;
        for (int probe = 0;; probe++) {
            if (probe == MAX_PROBES) return SCAN_FALLBACK;
            int64_t d = table[slot];
            if (d == -1) {
                table[slot] = distinct;
                first[distinct] = i;
                codes[i] = (int32_t)distinct++;
                break;
            }
            int64_t j = first[d];
            if (len[j * stride] == m && memcmp(buf + off[j * stride], p, (size_t)m) == 0) {
                codes[i] = (int32_t)d;
                break;
            }
            slot = (slot + 1) & mask;
        }
    }
    return distinct;
}

/*
 * For each of the n encoded KeyValues buf[off[i] : off[i] + len[i]] (a row every `stride`
 * int64s), where it is the plain string attribute (field 1 the key, then field 2 an AnyValue
 * holding only field 1, the string, nothing else), the offsets and lengths of its key and of
 * its value in out[4i .. 4i + 3]; out[4i] = -1 for any other shape (the caller converts it).
 */
void canopy_string_attributes(const uint8_t *buf, const int64_t *off, const int64_t *len,
                              int64_t stride, int64_t n, int64_t *out) {
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *p = buf + off[i * stride], *end = p + len[i * stride];
        uint64_t key_len, any_len, value_len;
        int64_t *row = out + 4 * i;
        row[0] = -1;
        if (p == end || *p++ != 0x0A || varint(&p, end, &key_len)) continue;
        if (key_len > (uint64_t)(end - p)) continue;
        const uint8_t *key = p;
        p += key_len;
        if (p == end || *p++ != 0x12 || varint(&p, end, &any_len)) continue;
        if (any_len != (uint64_t)(end - p) || any_len == 0) continue;
        if (*p++ != 0x0A || varint(&p, end, &value_len)) continue;
        if (value_len != (uint64_t)(end - p)) continue;
        row[0] = key - buf;
        row[1] = (int64_t)key_len;
        row[2] = p - buf;
        row[3] = (int64_t)value_len;
    }
}
