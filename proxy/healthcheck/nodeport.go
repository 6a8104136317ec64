package healthcheck

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// NodePortServers runs one HTTP server per health-check node port of the
// externalTrafficPolicy Local services, answering 200 while the service has
// local endpoints on this node and 503 otherwise, like upstream.
type NodePortServers struct {
	mu      sync.Mutex
	servers map[int32]*nodePortServer
}

type nodePortServer struct {
	srv     *http.Server
	service types.NamespacedName
	local   int
}

// NewNodePortServers returns an empty set.
func NewNodePortServers() *NodePortServers {
	return &NodePortServers{servers: map[int32]*nodePortServer{}}
}

// Want describes one health-check node port.
type Want struct {
	Service        types.NamespacedName
	LocalEndpoints int
}

// Sync opens listeners for new ports, updates counts and closes ports no
// longer wanted. A port that cannot be opened is reported and retried on
// the next Sync; the others still work.
func (s *NodePortServers) Sync(want map[int32]Want) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for port, srv := range s.servers {
		if _, ok := want[port]; !ok {
			srv.srv.Close()
			delete(s.servers, port)
		}
	}
	var errs []error
	for port, w := range want {
		if srv, ok := s.servers[port]; ok {
			srv.service, srv.local = w.Service, w.LocalEndpoints
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			errs = append(errs, fmt.Errorf("health-check node port %d of %s: %w", port, w.Service, err))
			continue
		}
		srv := &nodePortServer{service: w.Service, local: w.LocalEndpoints}
		srv.srv = &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			s.mu.Lock()
			name, n := srv.service, srv.local
			s.mu.Unlock()
			rw.Header().Set("Content-Type", "application/json")
			if n == 0 {
				rw.WriteHeader(http.StatusServiceUnavailable)
			}
			_ = json.NewEncoder(rw).Encode(map[string]any{
				"service":        map[string]string{"namespace": name.Namespace, "name": name.Name},
				"localEndpoints": n,
			})
		}), ReadHeaderTimeout: 5 * time.Second}
		s.servers[port] = srv
		go srv.srv.Serve(ln)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%v", errs)
	}
	return nil
}

// Close stops every server.
func (s *NodePortServers) Close() { _ = s.Sync(nil) }
