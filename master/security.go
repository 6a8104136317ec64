package master

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hoist-project/hoist/master/apiserver"
	"github.com/hoist-project/hoist/master/apiserver/auth/authn"
	"github.com/hoist-project/hoist/master/apiserver/auth/authz"
	"github.com/hoist-project/hoist/master/apiserver/auth/filters"
	"github.com/hoist-project/hoist/master/handlerpool"
	"github.com/hoist-project/hoist/master/join"
	"github.com/hoist-project/hoist/master/pki"
	"github.com/hoist-project/hoist/master/registry"
	"golang.org/x/net/http2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
)

// addresses are the URLs derived from the secure listener and the flags.
type addresses struct {
	// local is how processes on this machine reach the API (admin.kubeconfig,
	// the built-in controllers): 127.0.0.1 unless the listener is bound to
	// one specific address.
	local string
	// advertised is how nodes reach the API (the join instructions).
	advertised string
	// sans are the extra serving-certificate SANs (advertise address, bound
	// address, --tls-san).
	sans []string
}

// resolveAddresses derives the local and advertised URLs from the bound
// listener address. advertise may be empty: then the bound address, or for
// a wildcard bind the host's outbound address (detect), is advertised.
func resolveAddresses(bound net.Addr, advertise string, extraSANs []string, detect func() (net.IP, error)) (addresses, error) {
	host, port, err := net.SplitHostPort(bound.String())
	if err != nil {
		return addresses{}, err
	}
	bindIP := net.ParseIP(host)
	wildcard := bindIP == nil || bindIP.IsUnspecified()
	a := addresses{sans: append([]string(nil), extraSANs...)}
	localHost := "127.0.0.1"
	if !wildcard {
		localHost = bindIP.String()
		a.sans = append(a.sans, localHost)
	}
	switch {
	case advertise != "":
		ip := net.ParseIP(advertise)
		if ip == nil {
			return addresses{}, fmt.Errorf("--advertise-address %q is not an IP address", advertise)
		}
		advertise = ip.String()
	case !wildcard:
		advertise = localHost
	default:
		ip, err := detect()
		if err != nil {
			slog.Warn("no --advertise-address and no outbound address found: advertising 127.0.0.1, so only this machine can join; set --advertise-address", "err", err)
			ip = net.IPv4(127, 0, 0, 1)
		}
		advertise = ip.String()
	}
	a.sans = append(a.sans, advertise)
	a.local = "https://" + net.JoinHostPort(localHost, port)
	a.advertised = "https://" + net.JoinHostPort(advertise, port)
	return a, nil
}

// outboundIP is the source address the kernel picks for the default route,
// which is what upstream kube-apiserver advertises when not told. Connecting
// a UDP socket sends no packet.
func outboundIP() (net.IP, error) {
	c, err := net.Dial("udp4", "192.0.2.1:9") // TEST-NET-1: never routed anywhere real
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ip := c.LocalAddr().(*net.UDPAddr).IP
	if ip.IsLoopback() || ip.IsUnspecified() {
		return nil, fmt.Errorf("outbound address %s is not reachable from other machines", ip)
	}
	return ip, nil
}

// security is the master's loaded security material.
type security struct {
	pki   *pki.PKI
	token string
	addrs addresses
	authn authn.Authenticator
	// tokens signs service account tokens (the TokenRequest API).
	tokens *authn.Issuer
}

// setUpSecurity creates or loads the PKI (serving certificate SANs include
// the advertised and bound addresses), admin.kubeconfig pointing at the
// local URL, the join token, and the authenticators.
func setUpSecurity(cfg Config, bound net.Addr) (*security, error) {
	addrs, err := resolveAddresses(bound, cfg.AdvertiseAddress, cfg.TLSSANs, outboundIP)
	if err != nil {
		return nil, err
	}
	p, err := pki.Ensure(pki.Config{DataDir: cfg.DataDir, Hosts: addrs.sans, ServiceCIDR: cfg.ServiceCIDR, AdminServer: addrs.local})
	if err != nil {
		return nil, err
	}
	token, err := join.EnsureToken(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("join token: %w", err)
	}
	an := authn.Union{authn.X509{Roots: p.CA.Pool(), Cache: authn.NewVerifyCache(4096)}}
	if cfg.TokenAuthFile != "" {
		tf, err := authn.LoadTokenFile(cfg.TokenAuthFile)
		if err != nil {
			return nil, fmt.Errorf("--token-auth-file: %w", err)
		}
		an = append(an, tf)
	}
	saKey, err := pki.EnsureServiceAccountKey(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("service account key: %w", err)
	}
	// As upstream, the API server's audience defaults to the issuer.
	tokens := &authn.Issuer{Key: saKey, Issuer: authn.DefaultServiceAccountIssuer,
		Audiences: []string{authn.DefaultServiceAccountIssuer}}
	return &security{pki: p, token: token, addrs: addrs, authn: an, tokens: tokens}, nil
}

// serviceAccountAuthn verifies the tokens s.tokens signs against the
// service accounts and pods in api's stores.
func (s *security) serviceAccountAuthn(api *apiserver.Server) authn.Authenticator {
	return &authn.ServiceAccountTokens{Key: &s.tokens.Key.PublicKey, Issuer: s.tokens.Issuer,
		Audiences: s.tokens.Audiences, Objects: liveObjects{api}}
}

// secureHandler serves the join API (its token is its credential) beside
// api behind authentication and authorization.
func (s *security) secureHandler(api *apiserver.Server, log *slog.Logger) http.Handler {
	joinAPI := &join.Handler{Token: s.token, CA: s.pki.CA, Log: log}
	pods := api.Store(corev1.SchemeGroupVersion.WithResource("pods"))
	an := authn.Union{s.authn, s.serviceAccountAuthn(api)}
	guarded := filters.Wrap(api, an, authz.Default(podNodeNamer{pods}), filters.RequestAttributes, log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, join.PathPrefix) {
			joinAPI.ServeHTTP(w, r)
			return
		}
		guarded.ServeHTTP(w, r)
	})
}

// handlerWorkers is how many goroutines serve HTTP/2 API requests (each
// on a new goroutine otherwise) with the stacks they grew for earlier
// ones; more concurrent requests run on their own. The plain HTTP/1.1
// listener serves a connection's requests on one goroutine already.
const handlerWorkers = 64

// servers are the master's HTTP servers: TLS always, plain HTTP when asked.
type servers struct {
	list []*http.Server
	// errc receives the error of a server that stopped serving.
	errc chan error
}

// startServers serves api on the TLS listener behind sec (with the join API
// beside it) and, if insecureLn is set, without any checks on it. Requests
// derive from runCtx so that stopping ends open watches.
func startServers(runCtx context.Context, sec *security, tlsCfg *tls.Config, ln, insecureLn net.Listener, api *apiserver.Server, log *slog.Logger) (*servers, Serving) {
	baseCtx := func(net.Listener) context.Context { return runCtx }
	secure := &http.Server{Handler: handlerpool.Wrap(runCtx, sec.secureHandler(api, log), handlerWorkers), TLSConfig: tlsCfg,
		ReadHeaderTimeout: 30 * time.Second, BaseContext: baseCtx}
	s := &servers{list: []*http.Server{secure}, errc: make(chan error, 2)}
	// A client multiplexes its watches over one connection (client-go
	// does), and the default round-robin scheduler looks through every
	// open stream for each frame it writes; the random one keeps only
	// streams with data queued. (x/net deprecates choosing a scheduler:
	// from Go 1.27 its server wraps net/http's, which picks its own.)
	//lint:ignore SA1019 measured: fan-out p99 107-125 ms against 133-148 ms with the default (docs/bench/master.md)
	if err := http2.ConfigureServer(secure, &http2.Server{NewWriteScheduler: http2.NewRandomWriteScheduler}); err != nil {
		s.errc <- fmt.Errorf("configure HTTP/2: %w", err)
		return s, Serving{}
	}
	go func() { s.errc <- secure.ServeTLS(ln, "", "") }()
	info := Serving{SecureAddress: ln.Addr().String(), LocalURL: sec.addrs.local, AdvertisedURL: sec.addrs.advertised,
		AdminKubeconfig: sec.pki.AdminKubeconfigPath, JoinToken: sec.token, CACertHash: sec.pki.CA.Hash()}
	if insecureLn != nil {
		plain := &http.Server{Handler: api, ReadHeaderTimeout: 30 * time.Second, BaseContext: baseCtx}
		s.list = append(s.list, plain)
		go func() { s.errc <- plain.Serve(insecureLn) }()
		info.InsecureAddress = insecureLn.Addr().String()
		log.Warn("--insecure-address serves the API over plain HTTP WITHOUT authentication: anyone who can connect is cluster admin; use it only for debugging",
			"address", info.InsecureAddress)
	}
	return s, info
}

func (s *servers) shutdown(ctx context.Context) {
	for _, hs := range s.list {
		_ = hs.Shutdown(ctx)
	}
}

// loopbackConfig is the client configuration of the master's built-in
// controllers: the local URL with a client certificate (CN system:apiserver,
// group system:masters) issued in memory at every start, as upstream's
// loopback client. It is never written to disk.
func (s *security) loopbackConfig() (*rest.Config, error) {
	certPEM, keyPEM, err := s.pki.CA.IssueWithKey(pki.Leaf{CommonName: "system:apiserver",
		Organization: []string{pki.MastersGroup}, Usage: x509.ExtKeyUsageClientAuth})
	if err != nil {
		return nil, fmt.Errorf("loopback client certificate: %w", err)
	}
	return &rest.Config{Host: s.addrs.local, QPS: 50, Burst: 100,
		TLSClientConfig: rest.TLSClientConfig{CAData: s.pki.CA.CertPEM, CertData: certPEM, KeyData: keyPEM}}, nil
}

// podNodeNamer tells the node authorizer which node a pod is bound to (a
// NotFound error for a missing pod). A bound pod's spec.nodeName never
// changes, so the watch cache answers it, as upstream's node authorizer
// answers from informers; an unbound or uncached pod is read from etcd,
// since the binding may be newer than the cache.
type podNodeNamer struct{ pods *registry.Store }

func (p podNodeNamer) PodNodeName(ctx context.Context, namespace, name string) (string, error) {
	if obj, ok := p.pods.CachedGet(namespace, name); ok {
		if pod, ok := obj.(*corev1.Pod); ok && pod.Spec.NodeName != "" {
			return pod.Spec.NodeName, nil
		}
	}
	obj, err := p.pods.Get(ctx, namespace, name)
	if err != nil {
		return "", err
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return "", fmt.Errorf("pod store returned %T", obj)
	}
	return pod.Spec.NodeName, nil
}

// liveObjects answers the service account authenticator from the watch
// cache, falling back to etcd when the cache misses or holds another uid
// (it may lag a just-created object).
type liveObjects struct{ api *apiserver.Server }

func (l liveObjects) Live(ctx context.Context, resource, namespace, name, uid string) (bool, error) {
	st := l.api.Store(corev1.SchemeGroupVersion.WithResource(resource))
	if st == nil {
		return false, fmt.Errorf("no store for %s", resource)
	}
	uidOf := func(obj runtime.Object) string {
		if acc, err := meta.Accessor(obj); err == nil {
			return string(acc.GetUID())
		}
		return ""
	}
	if obj, ok := st.CachedGet(namespace, name); ok && uidOf(obj) == uid {
		return true, nil
	}
	obj, err := st.Get(ctx, namespace, name)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return uidOf(obj) == uid, nil
}
