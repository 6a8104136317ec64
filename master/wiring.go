package master

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/hoist-project/hoist/master/admission"
	"github.com/hoist-project/hoist/master/allocator"
	"github.com/hoist-project/hoist/master/apiserver"
	"github.com/hoist-project/hoist/master/controllers/masterendpoints"
	"github.com/hoist-project/hoist/master/registry"
	"github.com/hoist-project/hoist/master/storage"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
)

func newAdmission(cfg Config, st *storage.Store, stores []*registry.Store) (*admission.Chain, error) {
	ipRange, err := allocator.ParseCIDR(cfg.ServiceCIDR)
	if err != nil {
		return nil, fmt.Errorf("master: --service-cidr: %w", err)
	}
	ports, err := allocator.ParsePortRange(cfg.NodePortRange)
	if err != nil {
		return nil, fmt.Errorf("master: --service-node-port-range: %w", err)
	}
	var nsStore *registry.Store
	for _, s := range stores {
		if s.Res.Kind == "Namespace" {
			nsStore = s
		}
	}
	return &admission.Chain{
		Namespaces: nsStore,
		ServiceIPs: allocator.New(st.Client(), "/registry/ranges/serviceips/", ipRange),
		NodePorts:  allocator.New(st.Client(), "/registry/ranges/servicenodeports/", ports),
	}, nil
}

// bootstrap creates the system namespaces and the kubernetes Service (idempotent).
func bootstrap(ctx context.Context, srv *apiserver.Server, adm *admission.Chain, cfg Config) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	nsStore := srv.Store(corev1.SchemeGroupVersion.WithResource("namespaces"))
	for _, n := range admission.SystemNamespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}
		if _, err := nsStore.Create(ctx, "", ns, false); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create namespace %s: %w", n, err)
		}
	}
	return ensureKubernetesService(ctx, srv, adm, cfg)
}

// ensureKubernetesService creates the kubernetes Service when it is
// missing: at start, and on every endpoints reconcile after that, so an
// operator who deletes it gets it back (as upstream's bootstrap
// controller does).
func ensureKubernetesService(ctx context.Context, srv *apiserver.Server, adm *admission.Chain, cfg Config) error {
	svcStore := srv.Store(corev1.SchemeGroupVersion.WithResource("services"))
	if _, ok := svcStore.CachedGet("default", "kubernetes"); ok {
		return nil // the watch cache may lag: a miss is checked on etcd
	}
	if _, err := svcStore.Get(ctx, "default", "kubernetes"); err == nil {
		return nil
	} else if !apierrors.IsNotFound(err) {
		return err
	}
	prefix, err := netip.ParsePrefix(cfg.ServiceCIDR)
	if err != nil {
		return err
	}
	// Upstream gives the kubernetes Service the first address of the range.
	first := prefix.Masked().Addr().Next().String()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", UID: "",
			Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		Spec: corev1.ServiceSpec{ClusterIP: first, Ports: []corev1.ServicePort{{
			Name: "https", Protocol: corev1.ProtocolTCP, Port: 443, TargetPort: intstr.FromInt32(6443)}}},
	}
	svc.UID = "00000000-0000-0000-0000-6b7562657273" // stable owner of the first service IP
	if err := adm.Admit(ctx, apiserver.Attributes{Op: apiserver.Create, Resource: svcStore.Res, Namespace: "default", Name: "kubernetes", Obj: svc}); err != nil {
		return fmt.Errorf("allocate kubernetes service IP %s: %w", first, err)
	}
	if _, err := svcStore.Create(ctx, "default", svc, false); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create kubernetes service: %w", err)
	}
	return nil
}

// masterEndpoints returns the loop that keeps default/kubernetes's
// Endpoints and EndpointSlice on the live masters (see masterendpoints),
// this one announced at its advertised URL: what nodes reach the API at.
// A loopback address is announced too (upstream refuses it): a master
// bound to 127.0.0.1 serves only this machine, and there the Service
// must lead to it as well.
func masterEndpoints(st *storage.Store, advertisedURL string, rc *rest.Config, hc *http.Client, ensureService func(context.Context) error) (func(context.Context), error) {
	u, err := url.Parse(advertisedURL)
	if err != nil {
		return nil, err
	}
	self, err := masterendpoints.ParseMaster(u.Host)
	if err != nil {
		return nil, fmt.Errorf("advertised address %s: %w", u.Host, err)
	}
	client, err := clientWithRate(rc, hc, electionQPS)
	if err != nil {
		return nil, err
	}
	cfg := masterendpoints.Config{Client: client, Leases: &masterendpoints.EtcdLeases{Client: st.Client()}, Self: self,
		EnsureService: ensureService}
	return func(ctx context.Context) { masterendpoints.Run(ctx, cfg) }, nil
}
