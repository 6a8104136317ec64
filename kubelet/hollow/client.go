package hollow

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Client rate limits: a thousand nodes renewing a Lease (two requests)
// every 10 s plus pod statuses need far more than client-go's 5 QPS.
const (
	clientQPS   = 5000
	clientBurst = 10000
)

// NewClient builds the one client all hollow nodes share from a
// kubeconfig file.
func NewClient(kubeconfig string) (kubernetes.Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("hollow: kubeconfig %s: %w", kubeconfig, err)
	}
	return NewClientForConfig(rc)
}

// NewClientForConfig is NewClient for a loaded configuration (copied, not
// changed).
func NewClientForConfig(rc *rest.Config) (kubernetes.Interface, error) {
	rc = rest.CopyConfig(rc)
	rc.QPS, rc.Burst = clientQPS, clientBurst
	rc.UserAgent = "hoist-hollow-node"
	return kubernetes.NewForConfig(rc)
}
