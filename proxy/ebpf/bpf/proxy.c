//go:build ignore

// Service load balancing for hoist's eBPF proxy mode.
// Attached at the cgroup v2 root: connect4 and sendmsg4 rewrite a service
// address to a backend before the packet exists (no per-packet NAT, no
// conntrack); recvmsg4 and getpeername4 show the service address again.
// Traffic from outside the node to a NodePort (or an external IP) has no
// local socket: tc programs on the node's interfaces DNAT it on ingress.
// To a local backend the client IP is kept and egress restores the source
// of the replies; to a backend on another node the packet is also SNATed
// to the node address and a port of its own, so the replies come back
// here, and both directions are sent out by bpf_redirect_neigh.
// All addresses and ports in the maps are in network byte order, as in
// struct bpf_sock_addr.

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <stddef.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ECONNREFUSED 111
#define SVC_FLAG_AFFINITY 1
#define SCOPE_SERVICE 0  // socket hooks: cluster/external IPs, node addresses' NodePorts
#define SCOPE_NODEPORT 1 // tc: NodePorts and external IPs reached from outside

struct svc_key {
	__u32 vip;
	__u16 port;
	__u8 proto; // IPPROTO_TCP or IPPROTO_UDP
	__u8 scope; // SCOPE_*
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

#define BACKEND_REMOTE 1 // on another node: tc SNATs (external set only)

struct backend_value {
	__u32 ip;
	__u16 port;
	__u16 flags; // BACKEND_*
};

// Session affinity of socket hooks is per client network namespace (a
// pod, or the host), the identity a socket hook knows before the first
// packet; tc knows the client IP (netns_cookie 0).
struct affinity_key {
	__u64 netns_cookie;
	__u32 id;
	__u32 client_ip;
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

// A NodePort flow from outside, in either direction: the client and the
// node address it connected to (ingress), or the client and the backend
// (the replies on egress).
struct flow_key {
	__u32 client_ip;
	__u32 ip;
	__u16 client_port;
	__u16 port;
	__u8 proto;
	__u8 pad[3];
};

struct flow_value {
	__u32 ip;
	__u16 port;
	__u16 nat_port; // 0: a local backend, no SNAT
};

// Ingress: {client, node address:NodePort} → backend, so every packet of a
// flow goes to the backend its first packet chose.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct flow_key);
	__type(value, struct flow_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hoist_np_flows SEC(".maps");

// Egress: {client, backend} → node address:NodePort for the replies.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct flow_key);
	__type(value, struct flow_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hoist_np_revnat SEC(".maps");

// The SNAT of a flow to a remote backend, keyed by its replies as they
// arrive: {backend, node address:nat port}. The forward direction is the
// flow's hoist_np_flows entry (which holds nat_port). Ports come from
// [NAT_PORT_MIN, NAT_PORT_MAX], above the kernel's default ephemeral range
// (32768-60999) and the NodePort range, per backend address:port.
struct snat_key {
	__u32 backend_ip;
	__u32 node_ip;
	__u16 backend_port;
	__u16 nat_port;
	__u8 proto;
	__u8 pad[3];
};

struct snat_value {
	__u64 last_ns;     // last packet in either direction
	__u32 client_ip;
	__u16 client_port;
	__u16 node_port;   // the NodePort (or external IP port) the client used
	__u8 closing;      // TCP FIN or RST seen
	__u8 pad[7];
};

#define NAT_PORT_MIN 61000
#define NAT_PORT_MAX 65535
#define NAT_PROBES 32
// A port is taken over from an entry idle this long: closed TCP flows
// once the backend's TIME_WAIT (60 s) is over (a SYN into it may be
// rejected by PAWS), UDP flows, and TCP flows silent for long.
#define NAT_IDLE_CLOSED_NS (65ULL * 1000000000ULL)
#define NAT_IDLE_UDP_NS (60ULL * 1000000000ULL)
#define NAT_IDLE_TCP_NS (7200ULL * 1000000000ULL)

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct snat_key);
	__type(value, struct snat_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} hoist_np_snat SEC(".maps");

static __always_inline struct svc_value *lookup_service(struct bpf_sock_addr *ctx, struct svc_key *key)
{
	key->vip = ctx->user_ip4;
	key->port = (__u16)ctx->user_port;
	key->proto = (__u8)ctx->protocol;
	key->scope = SCOPE_SERVICE;
	return bpf_map_lookup_elem(&hoist_services, key);
}

// pick chooses a backend of svc: the affine one (per akey) while it is
// fresh and still a backend, else a uniformly random slot.
static __always_inline struct backend_value *pick(struct svc_value *svc, struct affinity_key *akey)
{
	struct backend_key bkey = {.id = svc->id};
	__u64 now = 0;

	if (svc->flags & SVC_FLAG_AFFINITY) {
		akey->id = svc->id;
		now = bpf_ktime_get_ns();
		struct affinity_value *aff = bpf_map_lookup_elem(&hoist_affinity, akey);
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
		bpf_map_update_elem(&hoist_affinity, akey, &val, BPF_ANY);
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
	struct affinity_key akey = {.netns_cookie = bpf_get_netns_cookie(ctx)};
	struct backend_value *be = pick(svc, &akey);
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

#define IP_DST_OFF (ETH_HLEN + offsetof(struct iphdr, daddr))
#define IP_SRC_OFF (ETH_HLEN + offsetof(struct iphdr, saddr))
#define IP_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))
#define L4_OFF (ETH_HLEN + sizeof(struct iphdr))

// parse reads the IPv4 TCP/UDP header fields tc needs; options and
// fragments are left to the stack (not a NodePort flow this proxy made).
static __always_inline int parse(struct __sk_buff *skb, struct flow_key *key, __u32 *dst, __u16 *dport, int *syn, int *fin)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))
		return 0;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip + 1);
		if ((void *)(tcp + 1) > end)
			return 0;
		key->client_port = tcp->source;
		*dport = tcp->dest;
		*syn = tcp->syn && !tcp->ack;
		*fin = tcp->fin || tcp->rst;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(ip + 1);
		if ((void *)(udp + 1) > end)
			return 0;
		key->client_port = udp->source;
		*dport = udp->dest;
	} else {
		return 0;
	}
	key->client_ip = ip->saddr;
	key->proto = ip->protocol;
	*dst = ip->daddr;
	return 1;
}

// rewrite replaces the address at ip_off and the port at port_off (the
// TCP/UDP source or destination), fixing both checksums.
static __always_inline void rewrite(struct __sk_buff *skb, __u8 proto, __u32 ip_off, __u32 old_ip, __u32 new_ip, __u32 port_off, __u16 old_port, __u16 new_port)
{
	__u32 csum_off = L4_OFF + (proto == IPPROTO_TCP ? offsetof(struct tcphdr, check) : offsetof(struct udphdr, check));
	__u64 mangled = proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;

	bpf_l4_csum_replace(skb, csum_off, old_ip, new_ip, BPF_F_PSEUDO_HDR | mangled | sizeof(new_ip));
	bpf_l4_csum_replace(skb, csum_off, old_port, new_port, mangled | sizeof(new_port));
	bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_ip, new_ip, sizeof(new_ip));
	bpf_skb_store_bytes(skb, ip_off, &new_ip, sizeof(new_ip), 0);
	bpf_skb_store_bytes(skb, port_off, &new_port, sizeof(new_port), 0);
}

#define AF_INET 2

// send_out routes a packet whose source is now this node's address: the
// stack would drop it as a martian (a local source arriving on an
// interface), so it leaves through the egress of the FIB's interface,
// the neighbour (MAC) resolved by the kernel.
static __always_inline int send_out(struct __sk_buff *skb, __u32 src, __u32 dst)
{
	struct bpf_fib_lookup fib = {.family = AF_INET, .ipv4_src = src, .ipv4_dst = dst, .ifindex = skb->ifindex};
	long ret = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH);
	if (ret != BPF_FIB_LKUP_RET_SUCCESS && ret != BPF_FIB_LKUP_RET_NO_NEIGH)
		return TC_ACT_SHOT;
	return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
}

static __always_inline int nat_reusable(struct snat_value *v, __u8 proto, __u64 now)
{
	__u64 idle = v->closing ? NAT_IDLE_CLOSED_NS : proto == IPPROTO_UDP ? NAT_IDLE_UDP_NS : NAT_IDLE_TCP_NS;
	return now - v->last_ns > idle;
}

// snat_alloc records the SNAT of a new flow under a random free port of
// rk's backend and node address; 0 when none was found.
static __always_inline int snat_alloc(struct snat_key *rk, struct snat_value *val)
{
	for (int i = 0; i < NAT_PROBES; i++) {
		rk->nat_port = bpf_htons(NAT_PORT_MIN + bpf_get_prandom_u32() % (NAT_PORT_MAX - NAT_PORT_MIN + 1));
		struct snat_value *old = bpf_map_lookup_elem(&hoist_np_snat, rk);
		if (old && !nat_reusable(old, rk->proto, val->last_ns))
			continue;
		if (bpf_map_update_elem(&hoist_np_snat, rk, val, old ? BPF_EXIST : BPF_NOEXIST) == 0)
			return 1;
	}
	return 0;
}

static __always_inline __u32 sport_off(__u8 proto)
{
	return L4_OFF + (proto == IPPROTO_TCP ? offsetof(struct tcphdr, source) : offsetof(struct udphdr, source));
}

static __always_inline __u32 dport_off(__u8 proto)
{
	return L4_OFF + (proto == IPPROTO_TCP ? offsetof(struct tcphdr, dest) : offsetof(struct udphdr, dest));
}

// snat_open reports whether flow is SNATed and its connection not closed:
// a SYN on it is a retransmission and must not pick again.
static __always_inline int snat_open(struct flow_value *flow, struct snat_key *rk)
{
	if (!flow->nat_port)
		return 0;
	struct snat_key k = {.backend_ip = flow->ip, .backend_port = flow->port, .node_ip = rk->node_ip, .nat_port = flow->nat_port, .proto = rk->proto};
	struct snat_value *v = bpf_map_lookup_elem(&hoist_np_snat, &k);
	return v && !v->closing;
}

// snat_reply handles a reply from a remote backend to a SNATed flow: it
// leaves with the NodePort as source, to the client.
static __always_inline int snat_reply(struct __sk_buff *skb, struct flow_key *key, __u32 dst, __u16 dport, int fin)
{
	__u16 p = bpf_ntohs(dport);
	if (p < NAT_PORT_MIN)
		return -1;
	struct snat_key rk = {.backend_ip = key->client_ip, .backend_port = key->client_port, .node_ip = dst, .nat_port = dport, .proto = key->proto};
	struct snat_value *v = bpf_map_lookup_elem(&hoist_np_snat, &rk);
	if (!v)
		return -1;
	v->last_ns = bpf_ktime_get_ns();
	if (fin)
		v->closing = 1;
	__u32 client = v->client_ip;
	__u16 cport = v->client_port, nport = v->node_port;
	rewrite(skb, key->proto, IP_SRC_OFF, key->client_ip, dst, sport_off(key->proto), key->client_port, nport);
	rewrite(skb, key->proto, IP_DST_OFF, dst, client, dport_off(key->proto), dport, cport);
	return send_out(skb, dst, client);
}

// Ingress on the node's interfaces: a packet to a NodePort (or external
// IP) is sent to a backend of the service's external set. A local one
// sees the client's address; a remote one (externalTrafficPolicy Cluster)
// sees this node's. A service without one passes unchanged, so the stack
// refuses it (nothing listens on a NodePort).
SEC("tc")
int hoist_nodeport_ingress(struct __sk_buff *skb)
{
	struct flow_key key = {};
	__u32 dst;
	__u16 dport;
	int syn = 0, fin = 0;
	if (!parse(skb, &key, &dst, &dport, &syn, &fin))
		return TC_ACT_OK;
	int verdict = snat_reply(skb, &key, dst, dport, fin);
	if (verdict >= 0)
		return verdict;
	key.ip = dst;
	key.port = dport;
	struct flow_value be = {};
	struct snat_key rk = {.node_ip = dst, .proto = key.proto};
	struct snat_value nat = {.last_ns = bpf_ktime_get_ns(), .client_ip = key.client_ip, .client_port = key.client_port, .node_port = dport};
	struct flow_value *known = bpf_map_lookup_elem(&hoist_np_flows, &key);
	if (known && (!syn || snat_open(known, &rk))) {
		be = *known;
	} else {
		struct svc_key skey = {.vip = dst, .port = dport, .proto = key.proto, .scope = SCOPE_NODEPORT};
		struct svc_value *svc = bpf_map_lookup_elem(&hoist_services, &skey);
		if (!svc || svc->count == 0)
			return TC_ACT_OK;
		struct affinity_key akey = {.client_ip = key.client_ip};
		struct backend_value *b = pick(svc, &akey);
		if (!b)
			return TC_ACT_OK;
		be.ip = b->ip;
		be.port = b->port;
		if (b->flags & BACKEND_REMOTE) {
			rk.backend_ip = be.ip;
			rk.backend_port = be.port;
			if (!snat_alloc(&rk, &nat))
				return TC_ACT_SHOT; // every port busy: the client retries
			be.nat_port = rk.nat_port;
		} else {
			struct flow_key rkey = {.client_ip = key.client_ip, .client_port = key.client_port, .ip = be.ip, .port = be.port, .proto = key.proto};
			struct flow_value orig = {.ip = dst, .port = dport};
			bpf_map_update_elem(&hoist_np_revnat, &rkey, &orig, BPF_ANY);
		}
		bpf_map_update_elem(&hoist_np_flows, &key, &be, BPF_ANY);
	}
	rewrite(skb, key.proto, IP_DST_OFF, dst, be.ip, dport_off(key.proto), dport, be.port);
	if (!be.nat_port)
		return TC_ACT_OK;
	// Keep the reply entry fresh (and recreate it if LRU evicted it).
	rk.backend_ip = be.ip;
	rk.backend_port = be.port;
	rk.nat_port = be.nat_port;
	struct snat_value *v = bpf_map_lookup_elem(&hoist_np_snat, &rk);
	if (v) {
		v->last_ns = nat.last_ns;
		if (fin)
			v->closing = 1;
	} else {
		nat.closing = fin;
		bpf_map_update_elem(&hoist_np_snat, &rk, &nat, BPF_ANY);
	}
	rewrite(skb, key.proto, IP_SRC_OFF, key.client_ip, dst, sport_off(key.proto), key.client_port, be.nat_port);
	return send_out(skb, dst, be.ip);
}

// Egress on the same interfaces: a backend's reply to a NodePort client
// leaves with the node address and NodePort the client used.
SEC("tc")
int hoist_nodeport_egress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))
		return TC_ACT_OK;
	struct flow_key key = {.client_ip = ip->daddr, .ip = ip->saddr, .proto = ip->protocol};
	__u32 port_off;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip + 1);
		if ((void *)(tcp + 1) > end)
			return TC_ACT_OK;
		key.client_port = tcp->dest;
		key.port = tcp->source;
		port_off = L4_OFF + offsetof(struct tcphdr, source);
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *udp = (void *)(ip + 1);
		if ((void *)(udp + 1) > end)
			return TC_ACT_OK;
		key.client_port = udp->dest;
		key.port = udp->source;
		port_off = L4_OFF + offsetof(struct udphdr, source);
	} else {
		return TC_ACT_OK;
	}
	struct flow_value *orig = bpf_map_lookup_elem(&hoist_np_revnat, &key);
	if (!orig)
		return TC_ACT_OK;
	struct flow_value o = *orig;
	rewrite(skb, key.proto, IP_SRC_OFF, key.ip, o.ip, port_off, key.port, o.port);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
