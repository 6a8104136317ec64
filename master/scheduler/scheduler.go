// Package scheduler is hoist's kube-scheduler: it watches pending pods
// whose schedulerName is ours, filters and scores nodes from an
// incrementally maintained snapshot (package framework), assumes the pod on
// the chosen node and writes the binding asynchronously, rolling the
// assumption back if the binding fails. Pods that fit nowhere wait in the
// queue's unschedulable set until a cluster event may make them fit.
package scheduler

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/hoist-project/hoist/internal/informers"
	"github.com/hoist-project/hoist/master/controllers/ctrlutil"
	"github.com/hoist-project/hoist/master/scheduler/framework"
	"github.com/hoist-project/hoist/master/scheduler/queue"
)

// DefaultSchedulerName is the spec.schedulerName this scheduler serves
// unless configured otherwise.
const DefaultSchedulerName = corev1.DefaultSchedulerName

// Config of the scheduler. Zero values take defaults.
type Config struct {
	// SchedulerName selects the pods to schedule (default-scheduler).
	SchedulerName string
	// BindWorkers bounds concurrent binding requests (default 64: a
	// binding is an etcd read and write, and under load the API server
	// answers in tens of milliseconds, so concurrency is throughput).
	BindWorkers int
	// UnschedulableTimeout retries a parked pod even without a cluster
	// event after this long (default 5m, like upstream).
	UnschedulableTimeout time.Duration
	// Now is the clock (default time.Now).
	Now ctrlutil.Clock
}

func (c *Config) defaults() {
	if c.SchedulerName == "" {
		c.SchedulerName = DefaultSchedulerName
	}
	if c.BindWorkers <= 0 {
		c.BindWorkers = 64
	}
	if c.UnschedulableTimeout <= 0 {
		c.UnschedulableTimeout = 5 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Scheduler assigns pending pods to nodes.
type Scheduler struct {
	client   kubernetes.Interface
	cfg      Config
	pods     listersv1.PodLister
	synced   []cache.InformerSynced
	queue    *queue.Queue
	filters  []framework.Filter
	recorder record.EventRecorder

	mu    sync.Mutex // guards cache and tieBreak
	cache *nodeCache
	tie   int

	attempts atomic.Int64
	binds    chan struct{}
	wg       sync.WaitGroup
}

// New builds a scheduler over the factory's pod and node informers. The
// caller starts the factory; Run waits for it to sync.
func New(client kubernetes.Interface, factory informers.SharedInformerFactory, cfg Config) *Scheduler {
	cfg.defaults()
	s := &Scheduler{
		client:  client,
		cfg:     cfg,
		queue:   queue.New(cfg.Now),
		filters: framework.Filters(),
		cache:   newNodeCache(),
		binds:   make(chan struct{}, cfg.BindWorkers),
	}
	podInf := factory.Core().V1().Pods()
	nodeInf := factory.Core().V1().Nodes()
	s.pods = podInf.Lister()
	s.synced = []cache.InformerSynced{podInf.Informer().HasSynced, nodeInf.Informer().HasSynced}
	podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.onPod(nil, o.(*corev1.Pod)) },
		UpdateFunc: func(o, n any) { s.onPod(o.(*corev1.Pod), n.(*corev1.Pod)) },
		DeleteFunc: s.onPodDelete,
	})
	nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { s.onNode(nil, o.(*corev1.Node)) },
		UpdateFunc: func(o, n any) { s.onNode(o.(*corev1.Node), n.(*corev1.Node)) },
		DeleteFunc: s.onNodeDelete,
	})
	return s
}

// Attempts counts scheduling attempts so far (tests assert no busy loop).
func (s *Scheduler) Attempts() int64 { return s.attempts.Load() }

// Run schedules pods until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	s.recorder = ctrlutil.NewRecorder(ctx, s.client, s.cfg.SchedulerName)
	if !cache.WaitForCacheSync(ctx.Done(), s.synced...) {
		return nil // WaitForCacheSync only gives up when ctx ends: a shutdown, not an error
	}
	go func() {
		<-ctx.Done()
		s.queue.Close()
	}()
	go func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.queue.FlushStale(s.cfg.UnschedulableTimeout)
			}
		}
	}()
	for {
		pod, cycle, ok := s.queue.Pop()
		if !ok {
			break
		}
		s.scheduleOne(ctx, pod, cycle)
	}
	s.wg.Wait()
	return nil
}

func terminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

func (s *Scheduler) responsible(pod *corev1.Pod) bool {
	return pod.Spec.NodeName == "" && pod.Spec.SchedulerName == s.cfg.SchedulerName &&
		pod.DeletionTimestamp == nil && !terminal(pod)
}

func (s *Scheduler) onPod(old, pod *corev1.Pod) {
	if pod.Spec.NodeName != "" {
		s.queue.Delete(pod)
		s.mu.Lock()
		if terminal(pod) {
			s.cache.removePod(pod.UID)
		} else {
			s.cache.addPod(pod)
		}
		s.mu.Unlock()
		if terminal(pod) && (old == nil || !terminal(old)) {
			s.queue.MoveAllToActive()
		}
		return
	}
	if !s.responsible(pod) {
		s.queue.Delete(pod)
		return
	}
	if old != nil && !schedulingInputChanged(old, pod) {
		// Status-only churn (often our own condition): refresh the stored
		// object, never trigger a retry.
		s.queue.Update(pod)
		return
	}
	s.mu.Lock()
	inFlight := s.cache.isAccounted(pod.UID)
	s.mu.Unlock()
	if !inFlight {
		s.queue.Add(pod)
	}
}

func (s *Scheduler) onPodDelete(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		tomb, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if pod, ok = tomb.Obj.(*corev1.Pod); !ok {
			return
		}
	}
	s.queue.Delete(pod)
	s.mu.Lock()
	s.cache.removePod(pod.UID)
	s.mu.Unlock()
	if pod.Spec.NodeName != "" {
		s.queue.MoveAllToActive()
	}
}

func (s *Scheduler) onNode(old, node *corev1.Node) {
	s.mu.Lock()
	s.cache.setNode(node)
	s.mu.Unlock()
	if old == nil || nodeSchedulingChanged(old, node) {
		s.queue.MoveAllToActive()
	}
}

func (s *Scheduler) onNodeDelete(obj any) {
	node, ok := obj.(*corev1.Node)
	if !ok {
		tomb, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if node, ok = tomb.Obj.(*corev1.Node); !ok {
			return
		}
	}
	s.mu.Lock()
	s.cache.removeNode(node.Name)
	s.mu.Unlock()
}

// scheduleOne runs one attempt: filter, score, assume, bind asynchronously.
func (s *Scheduler) scheduleOne(ctx context.Context, pod *corev1.Pod, cycle int64) {
	s.attempts.Add(1)
	s.mu.Lock()
	if s.cache.isAccounted(pod.UID) {
		s.mu.Unlock()
		return
	}
	host, reasons, numNodes := s.pick(pod)
	var assumed *corev1.Pod
	if host != "" {
		cp := *pod // shallow: only spec.nodeName differs
		cp.Spec.NodeName = host
		assumed = &cp
		s.cache.assume(assumed)
	}
	s.mu.Unlock()
	if host == "" {
		s.unschedulable(ctx, pod, framework.FitErrorMessage(numNodes, reasons))
		s.queue.AddUnschedulable(pod, cycle)
		return
	}
	s.binds <- struct{}{}
	s.wg.Add(1)
	go func() {
		defer func() { <-s.binds; s.wg.Done() }()
		s.bind(ctx, pod, host)
	}()
}

// pick returns the chosen node, or the histogram of reasons. Caller holds mu.
func (s *Scheduler) pick(pod *corev1.Pod) (string, map[string]int, int) {
	nodes := s.cache.schedulable()
	st := framework.PreFilter(pod, nodes)
	feasible := make([]*framework.NodeInfo, 0, len(nodes))
	var reasons map[string]int
	for _, ni := range nodes {
		r := framework.RunFilters(s.filters, pod, ni, st)
		if len(r) == 0 {
			feasible = append(feasible, ni)
			continue
		}
		if reasons == nil {
			reasons = map[string]int{}
		}
		for _, x := range r {
			reasons[x]++
		}
	}
	if len(feasible) == 0 {
		return "", reasons, len(nodes)
	}
	scores := framework.Score(pod, st, feasible)
	s.tie++
	return feasible[framework.SelectHost(scores, s.tie%len(feasible))].Node.Name, nil, len(nodes)
}

func (s *Scheduler) bind(ctx context.Context, pod *corev1.Pod, host string) {
	b := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: host},
	}
	err := s.client.CoreV1().Pods(pod.Namespace).Bind(ctx, b, metav1.CreateOptions{})
	if err == nil {
		s.recorder.Eventf(pod, corev1.EventTypeNormal, "Scheduled", "Successfully assigned %s/%s to %s", pod.Namespace, pod.Name, host)
		return
	}
	s.mu.Lock()
	s.cache.forget(pod.UID)
	s.mu.Unlock()
	if apierrors.IsNotFound(err) || ctx.Err() != nil {
		return
	}
	slog.Warn("binding failed, retrying", "pod", queue.Key(pod), "node", host, "err", err)
	s.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedScheduling", "Binding rejected: %v", err)
	// The pod may now fit elsewhere or the conflict may clear: retry it
	// after a short pause rather than waiting for a cluster event.
	time.AfterFunc(time.Second, func() {
		if cur, err := s.pods.Pods(pod.Namespace).Get(pod.Name); err == nil && s.responsible(cur) {
			s.queue.Add(cur)
		}
	})
}
