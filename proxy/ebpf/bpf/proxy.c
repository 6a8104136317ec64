//go:build ignore

// Connect-time service load balancing for hoist's eBPF proxy mode.
// Attached at the cgroup v2 root: connect4 and sendmsg4 rewrite a service
// address to a backend before the packet exists (no per-packet NAT, no
// conntrack); recvmsg4 and getpeername4 show the service address again.
// All addresses and ports in the maps are in network byte order, as in
// struct bpf_sock_addr.

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#define ECONNREFUSED 111
#define SVC_FLAG_AFFINITY 1
#define SCOPE_SERVICE 0

struct svc_key {
	__u32 vip;
	__u16 port;
	__u8 proto; // IPPROTO_TCP or IPPROTO_UDP
	__u8 scope; // SCOPE_SERVICE: cluster/external IP
};

struct svc_value {
	__u32 id;               // backends live at {id, 0..count-1}
	__u16 count;            // usable backends; 0 refuses connections
	__u8 flags;             // SVC_FLAG_*
	__u8 pad;
	__u32 affinity_timeout; // seconds
};

struct backend_key {
	__u32 id;
	__u16 slot;
	__u16 pad;
};

struct backend_value {
	__u32 ip;
	__u16 port;
	__u16 pad;
};

// Session affinity is per client network namespace (a pod, or the host),
// the identity a socket hook knows before the first packet.
struct affinity_key {
	__u64 netns_cookie;
	__u32 id;
	__u32 pad;
};

struct affinity_value {
	__u64 last_ns;
	struct backend_value backend;
};

struct revnat_key {
	__u64 cookie; // socket cookie
	__u32 ip;     // backend
	__u16 port;
	__u16 pad;
};

struct revnat_value {
	__u32 vip;
	__u16 port;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct svc_key);
	__type(value, struct svc_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hoist_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 524288);
	__type(key, struct backend_key);
	__type(value, struct backend_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hoist_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct affinity_key);
	__type(value, struct affinity_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hoist_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct revnat_key);
	__type(value, struct revnat_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hoist_revnat SEC(".maps");

static __always_inline struct svc_value *lookup_service(struct bpf_sock_addr *ctx, struct svc_key *key)
{
	key->vip = ctx->user_ip4;
	key->port = (__u16)ctx->user_port;
	key->proto = (__u8)ctx->protocol;
	key->scope = SCOPE_SERVICE;
	return bpf_map_lookup_elem(&hoist_services, key);
}

// pick chooses a backend: the affine one while it is fresh and still a
// backend, else a uniformly random slot.
static __always_inline struct backend_value *pick(struct bpf_sock_addr *ctx, struct svc_value *svc)
{
	struct backend_key bkey = {.id = svc->id};
	struct affinity_key akey = {};
	__u64 now = 0;

	if (svc->flags & SVC_FLAG_AFFINITY) {
		akey.netns_cookie = bpf_get_netns_cookie(ctx);
		akey.id = svc->id;
		now = bpf_ktime_get_ns();
		struct affinity_value *aff = bpf_map_lookup_elem(&hoist_affinity, &akey);
		if (aff && now - aff->last_ns < (__u64)svc->affinity_timeout * 1000000000ULL) {
			for (__u16 i = 0; i < 256 && i < svc->count; i++) {
				bkey.slot = i;
				struct backend_value *be = bpf_map_lookup_elem(&hoist_backends, &bkey);
				if (be && be->ip == aff->backend.ip && be->port == aff->backend.port) {
					aff->last_ns = now;
					return be;
				}
			}
		}
	}
	bkey.slot = bpf_get_prandom_u32() % svc->count;
	struct backend_value *be = bpf_map_lookup_elem(&hoist_backends, &bkey);
	if (be && (svc->flags & SVC_FLAG_AFFINITY)) {
		struct affinity_value val = {.last_ns = now, .backend = *be};
		bpf_map_update_elem(&hoist_affinity, &akey, &val, BPF_ANY);
	}
	return be;
}

static __always_inline int translate(struct bpf_sock_addr *ctx)
{
	struct svc_key key;
	struct svc_value *svc = lookup_service(ctx, &key);
	if (!svc)
		return 1;
	if (svc->count == 0) {
		bpf_set_retval(-ECONNREFUSED); // refuse at once, as REJECT does
		return 0;
	}
	struct backend_value *be = pick(ctx, svc);
	if (!be)
		return 1; // a sync is replacing the set; let the packet go unchanged
	struct revnat_key rkey = {.cookie = bpf_get_socket_cookie(ctx), .ip = be->ip, .port = be->port};
	struct revnat_value rval = {.vip = key.vip, .port = key.port};
	bpf_map_update_elem(&hoist_revnat, &rkey, &rval, BPF_ANY);
	ctx->user_ip4 = be->ip;
	ctx->user_port = be->port;
	return 1;
}

static __always_inline int restore(struct bpf_sock_addr *ctx)
{
	struct revnat_key rkey = {.cookie = bpf_get_socket_cookie(ctx), .ip = ctx->user_ip4, .port = (__u16)ctx->user_port};
	struct revnat_value *rval = bpf_map_lookup_elem(&hoist_revnat, &rkey);
	if (rval) {
		ctx->user_ip4 = rval->vip;
		ctx->user_port = rval->port;
	}
	return 1;
}

SEC("cgroup/connect4")
int hoist_connect4(struct bpf_sock_addr *ctx) { return translate(ctx); }

SEC("cgroup/sendmsg4")
int hoist_sendmsg4(struct bpf_sock_addr *ctx) { return translate(ctx); }

SEC("cgroup/recvmsg4")
int hoist_recvmsg4(struct bpf_sock_addr *ctx) { return restore(ctx); }

SEC("cgroup/getpeername4")
int hoist_getpeername4(struct bpf_sock_addr *ctx) { return restore(ctx); }

char LICENSE[] SEC("license") = "Dual BSD/GPL";
