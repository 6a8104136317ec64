// Package serviceaccount makes sure every active namespace has the
// "default" ServiceAccount pods run as when they name none (the API server
// defaults spec.serviceAccountName to it), recreating it when deleted.
// Tokens are not minted here: pods get them from the TokenRequest API, as
// upstream since 1.24.
package serviceaccount

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
)

// Default is the name of the account every namespace gets.
const Default = "default"

// Config of the controller.
type Config struct {
	Workers int // concurrent syncs (default 2)
}

// Controller creates default ServiceAccounts.
type Controller struct {
	client     kubernetes.Interface
	namespaces listersv1.NamespaceLister
	accounts   listersv1.ServiceAccountLister
	loop       *ctrlutil.Loop
}

// New returns the controller.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config) *Controller {
	nsInf, saInf := factory.Core().V1().Namespaces(), factory.Core().V1().ServiceAccounts()
	c := &Controller{client: client, namespaces: nsInf.Lister(), accounts: saInf.Lister(),
		loop: ctrlutil.NewLoop("serviceaccount", cfg.Workers, 2)}
	c.loop.WatchKeys(nsInf.Informer())
	c.loop.Watch(saInf.Informer(), cache.ResourceEventHandlerFuncs{DeleteFunc: func(obj any) {
		if sa, ok := ctrlutil.Unwrap[*corev1.ServiceAccount](obj); ok && sa.Name == Default {
			c.loop.Queue.Add(sa.Namespace)
		}
	}})
	return c
}

// Run syncs namespaces until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	return c.loop.Run(ctx, ctrlutil.ObjectSync(func(_, name string) (*corev1.Namespace, error) { return c.namespaces.Get(name) }, nil, c.sync))
}

func (c *Controller) sync(ctx context.Context, _ string, ns *corev1.Namespace) error {
	if ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating {
		return nil
	}
	if _, err := c.accounts.ServiceAccounts(ns.Name).Get(Default); err == nil {
		return nil
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: Default, Namespace: ns.Name}}
	_, err := c.client.CoreV1().ServiceAccounts(ns.Name).Create(ctx, sa, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) || apierrors.IsForbidden(err) || apierrors.IsNotFound(err) {
		return nil // exists (stale cache), or the namespace is going away
	}
	return err
}
