// Package endpoints is the Endpoints and EndpointSlice controller: for
// every Service with a selector it publishes the matching pods' IPs, ready
// pods as ready, not-ready pods as not ready, and (EndpointSlices only)
// terminating pods with serving/terminating conditions so proxies can
// drain them. The desired content is computed by pure functions
// (desired.go) and written only when it differs.
package endpoints

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
)

// ManagedBy is the endpointslice.kubernetes.io/managed-by value of slices
// this controller owns (upstream's, so tools recognise them).
const ManagedBy = "endpointslice-controller.k8s.io"

// Config of the controller. Zero values take defaults.
type Config struct {
	Workers int // concurrent syncs (default 5)
}

// Controller maintains Endpoints and EndpointSlices.
type Controller struct {
	client   kubernetes.Interface
	cfg      Config
	services listersv1.ServiceLister
	pods     listersv1.PodLister
	eps      listersv1.EndpointsLister
	slices   discoverylisters.EndpointSliceLister
	loop     *ctrlutil.Loop
}

// New returns the controller.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config) *Controller {
	svcInf := factory.Core().V1().Services()
	podInf := factory.Core().V1().Pods()
	epInf := factory.Core().V1().Endpoints()
	sliceInf := factory.Discovery().V1().EndpointSlices()
	c := &Controller{
		client: client, cfg: cfg,
		services: svcInf.Lister(), pods: podInf.Lister(), eps: epInf.Lister(), slices: sliceInf.Lister(),
		loop: ctrlutil.NewLoop("endpoints", cfg.Workers, 5),
	}
	enqueue := func(o any) { ctrlutil.Enqueue(c.loop.Queue, o) }
	c.loop.WatchKeys(svcInf.Informer())
	c.loop.Watch(podInf.Informer(), cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onPod,
		UpdateFunc: func(o, n any) { c.onPod(o); c.onPod(n) },
		DeleteFunc: c.onPod,
	})
	// Someone else editing or deleting what we publish gets repaired.
	c.loop.Watch(epInf.Informer(), cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, n any) { enqueue(n) }, DeleteFunc: enqueue,
	})
	c.loop.Watch(sliceInf.Informer(), cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, n any) { c.onSlice(n) }, DeleteFunc: c.onSlice,
	})
	return c
}

func (c *Controller) onPod(obj any) {
	pod, ok := ctrlutil.Unwrap[*corev1.Pod](obj)
	if !ok {
		return
	}
	svcs, _ := c.services.Services(pod.Namespace).List(labels.Everything())
	for _, svc := range svcs {
		if len(svc.Spec.Selector) > 0 && labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			c.loop.Queue.Add(svc.Namespace + "/" + svc.Name)
		}
	}
}

func (c *Controller) onSlice(obj any) {
	s, ok := ctrlutil.Unwrap[*discoveryv1.EndpointSlice](obj)
	if !ok || s.Labels[discoveryv1.LabelManagedBy] != ManagedBy {
		return
	}
	if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
		c.loop.Queue.Add(s.Namespace + "/" + name)
	}
}

// Run syncs services until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	return c.loop.Run(ctx, ctrlutil.ObjectSync(c.getService, c.removeAll, c.sync))
}

func (c *Controller) getService(ns, name string) (*corev1.Service, error) {
	return c.services.Services(ns).Get(name)
}

func (c *Controller) sync(ctx context.Context, _ string, svc *corev1.Service) error {
	if len(svc.Spec.Selector) == 0 || svc.Spec.Type == corev1.ServiceTypeExternalName {
		// Endpoints of selector-less services belong to their users.
		return nil
	}
	pods, err := c.pods.Pods(svc.Namespace).List(labels.SelectorFromSet(svc.Spec.Selector))
	if err != nil {
		return err
	}
	return errors.Join(c.syncEndpoints(ctx, svc, DesiredSubsets(svc, pods)), c.syncSlices(ctx, svc, DesiredSlices(svc, pods)))
}

func (c *Controller) syncEndpoints(ctx context.Context, svc *corev1.Service, subsets []corev1.EndpointSubset) error {
	lbls := map[string]string{}
	for k, v := range svc.Labels {
		lbls[k] = v
	}
	if svc.Spec.ClusterIP == corev1.ClusterIPNone {
		lbls[corev1.IsHeadlessService] = ""
	}
	cur, err := c.eps.Endpoints(svc.Namespace).Get(svc.Name)
	if apierrors.IsNotFound(err) {
		ep := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: svc.Name, Namespace: svc.Namespace, Labels: lbls}, Subsets: subsets}
		_, err = c.client.CoreV1().Endpoints(svc.Namespace).Create(ctx, ep, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("endpoints %s/%s appeared concurrently, retrying", svc.Namespace, svc.Name)
		}
		return err
	}
	if err != nil {
		return err
	}
	if equality.Semantic.DeepEqual(cur.Subsets, subsets) && equality.Semantic.DeepEqual(cur.Labels, lbls) {
		return nil
	}
	cp := cur.DeepCopy()
	cp.Subsets, cp.Labels = subsets, lbls
	_, err = c.client.CoreV1().Endpoints(svc.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
	return err
}

func sliceSelector(svcName string) labels.Selector {
	return labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svcName, discoveryv1.LabelManagedBy: ManagedBy})
}

func (c *Controller) syncSlices(ctx context.Context, svc *corev1.Service, want []SliceContent) error {
	if len(want) == 0 {
		// An empty placeholder says "no endpoints" rather than "unknown".
		want = []SliceContent{{AddressType: discoveryv1.AddressTypeIPv4}}
	}
	existing, err := c.slices.EndpointSlices(svc.Namespace).List(sliceSelector(svc.Name))
	if err != nil {
		return err
	}
	// Reuse existing slices of the same key in name order, so an update
	// rewrites a slice instead of churning create/delete.
	pool := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range sortByName(existing) {
		k := (&SliceContent{AddressType: s.AddressType, Ports: s.Ports}).Key()
		pool[k] = append(pool[k], s)
	}
	t := true
	owner := metav1.OwnerReference{APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID, Controller: &t, BlockOwnerDeletion: &t}
	lbls := map[string]string{discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: ManagedBy}
	var errs []error
	for i := range want {
		w := &want[i]
		k := w.Key()
		if len(pool[k]) > 0 {
			cur := pool[k][0]
			pool[k] = pool[k][1:]
			if equality.Semantic.DeepEqual(cur.Endpoints, w.Endpoints) {
				continue
			}
			cp := cur.DeepCopy()
			cp.Endpoints = w.Endpoints
			_, err := c.client.DiscoveryV1().EndpointSlices(svc.Namespace).Update(ctx, cp, metav1.UpdateOptions{})
			errs = append(errs, err)
			continue
		}
		s := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{GenerateName: svc.Name + "-", Namespace: svc.Namespace, Labels: lbls,
				OwnerReferences: []metav1.OwnerReference{owner}},
			AddressType: w.AddressType, Ports: w.Ports, Endpoints: w.Endpoints,
		}
		_, err := c.client.DiscoveryV1().EndpointSlices(svc.Namespace).Create(ctx, s, metav1.CreateOptions{})
		errs = append(errs, err)
	}
	for _, left := range pool {
		for _, s := range left {
			err := c.client.DiscoveryV1().EndpointSlices(s.Namespace).Delete(ctx, s.Name, metav1.DeleteOptions{})
			if !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeAll deletes what was published for a deleted service.
func (c *Controller) removeAll(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	var errs []error
	if _, err := c.eps.Endpoints(ns).Get(name); err == nil {
		if err := c.client.CoreV1().Endpoints(ns).Delete(ctx, name, metav1.DeleteOptions{}); !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	slices, _ := c.slices.EndpointSlices(ns).List(sliceSelector(name))
	for _, s := range slices {
		if err := c.client.DiscoveryV1().EndpointSlices(ns).Delete(ctx, s.Name, metav1.DeleteOptions{}); !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func sortByName(in []*discoveryv1.EndpointSlice) []*discoveryv1.EndpointSlice {
	out := append([]*discoveryv1.EndpointSlice(nil), in...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Name < out[j-1].Name; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
