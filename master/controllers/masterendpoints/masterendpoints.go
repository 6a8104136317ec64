// Package masterendpoints points the kubernetes Service in default at the
// live masters, as kube-apiserver's lease endpoint reconciler does
// (--endpoint-reconciler-type=lease, its default): every master keeps a
// lease on its advertised address in etcd and, at start and every
// Interval, makes Endpoints and EndpointSlice default/kubernetes list
// exactly the masters whose leases are live. It runs in every master, not
// under leader election: each master announces itself, and since all
// compute the same content from the same leases they never fight.
package masterendpoints

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Upstream's names and defaults.
const (
	Namespace = "default"
	Name      = "kubernetes"
	PortName  = "https"
	// DefaultInterval is how often leases are renewed and the Endpoints
	// reconciled (upstream's EndpointReconcilerInterval).
	DefaultInterval = 10 * time.Second
	// DefaultTTL is how long a master that stopped renewing stays listed
	// (upstream's masterLeaseTTL).
	DefaultTTL = 15 * time.Second
	// skipMirror keeps a mirroring controller off the Endpoints: the
	// reconciler writes the EndpointSlice itself.
	skipMirror = "endpointslice.kubernetes.io/skip-mirror"
)

// Master is one master's advertised address and secure port.
type Master struct {
	IP   netip.Addr
	Port int32
}

func (m Master) String() string {
	return net.JoinHostPort(m.IP.String(), strconv.Itoa(int(m.Port)))
}

// Leases is where masters announce themselves (EtcdLeases).
type Leases interface {
	// Renew keeps self listed for ttl from now.
	Renew(ctx context.Context, self Master, ttl time.Duration) error
	// Remove stops listing self at once.
	Remove(ctx context.Context, self Master) error
	// List returns the masters listed now, in any order.
	List(ctx context.Context) ([]Master, error)
}

// Config of the reconciler.
type Config struct {
	Client kubernetes.Interface
	Leases Leases
	// Self is this master's advertised address and secure port.
	Self Master
	// Interval and TTL default to DefaultInterval and DefaultTTL.
	Interval, TTL time.Duration
	// EnsureService, if set, recreates the kubernetes Service itself when
	// it is missing; it runs before every reconcile.
	EnsureService func(context.Context) error
}

// Run announces Self and reconciles until ctx ends, then withdraws Self
// and removes it from the Endpoints at once (within a few seconds, while
// the caller keeps the API serving), so clients stop picking a master
// that is going away instead of waiting for its lease to expire.
func Run(ctx context.Context, cfg Config) {
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	log := slog.With("controller", "master-endpoints", "self", cfg.Self.String())
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	for {
		var serviceErr error
		if cfg.EnsureService != nil {
			serviceErr = cfg.EnsureService(ctx)
		}
		err := cfg.Leases.Renew(ctx, cfg.Self, cfg.TTL)
		if err == nil {
			err = Reconcile(ctx, cfg.Client, cfg.Leases)
		}
		err = errors.Join(serviceErr, err)
		if err != nil && ctx.Err() == nil {
			log.Warn("reconciling the kubernetes Service's endpoints", "err", err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			withdraw(cfg, log)
			return
		}
	}
}

// withdraw removes Self from the leases and the Endpoints.
func withdraw(cfg Config, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	err := cfg.Leases.Remove(ctx, cfg.Self)
	if err == nil {
		err = Reconcile(ctx, cfg.Client, cfg.Leases)
	}
	if err != nil {
		log.Warn("removing this master from the kubernetes Service's endpoints; its lease expires instead", "err", err)
	}
}

// Reconcile makes Endpoints and EndpointSlice default/kubernetes list the
// masters in leases, writing only what differs.
func Reconcile(ctx context.Context, client kubernetes.Interface, leases Leases) error {
	masters, err := leases.List(ctx)
	if err != nil {
		return err
	}
	subsets := DesiredSubsets(masters)
	return errors.Join(syncEndpoints(ctx, client, subsets), syncSlice(ctx, client, DesiredSlice(subsets)))
}

func syncEndpoints(ctx context.Context, client kubernetes.Interface, subsets []corev1.EndpointSubset) error {
	eps := client.CoreV1().Endpoints(Namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := eps.Get(ctx, Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: Name, Namespace: Namespace,
				Labels: map[string]string{skipMirror: "true"}}, Subsets: subsets}
			_, err = eps.Create(ctx, ep, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				// Another master created it meanwhile: compare with theirs.
				return apierrors.NewConflict(corev1.Resource("endpoints"), Name, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		if equality.Semantic.DeepEqual(cur.Subsets, subsets) && cur.Labels[skipMirror] == "true" {
			return nil
		}
		cp := cur.DeepCopy()
		cp.Subsets = subsets
		if cp.Labels == nil {
			cp.Labels = map[string]string{}
		}
		cp.Labels[skipMirror] = "true"
		_, err = eps.Update(ctx, cp, metav1.UpdateOptions{})
		return err
	})
}

func syncSlice(ctx context.Context, client kubernetes.Interface, want *discoveryv1.EndpointSlice) error {
	slices := client.DiscoveryV1().EndpointSlices(Namespace)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := slices.Get(ctx, Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = slices.Create(ctx, want, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(discoveryv1.Resource("endpointslices"), Name, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		if cur.AddressType == want.AddressType && equality.Semantic.DeepEqual(cur.Endpoints, want.Endpoints) &&
			equality.Semantic.DeepEqual(cur.Ports, want.Ports) && cur.Labels[discoveryv1.LabelServiceName] == Name {
			return nil
		}
		if cur.AddressType != want.AddressType {
			// addressType is immutable: replace the slice.
			if err := slices.Delete(ctx, Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &cur.UID}}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
			return apierrors.NewConflict(discoveryv1.Resource("endpointslices"), Name, fmt.Errorf("address type changed"))
		}
		cp := cur.DeepCopy()
		cp.Endpoints, cp.Ports = want.Endpoints, want.Ports
		if cp.Labels == nil {
			cp.Labels = map[string]string{}
		}
		cp.Labels[discoveryv1.LabelServiceName] = Name
		_, err = slices.Update(ctx, cp, metav1.UpdateOptions{})
		return err
	})
}
