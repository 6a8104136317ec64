package changes_test

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	"github.com/hoist-project/hoist/proxy/changes"
	ct "github.com/hoist-project/hoist/proxy/changes/changestest"
)

func TestTrackerSnapshot(t *testing.T) {
	woken := 0
	tr := changes.NewTracker("n0", func() { woken++ })
	svc := ct.Service("web", "10.96.0.10", []v1.ServicePort{ct.Port("http", v1.ProtocolTCP, 80, "http", 0)}, ct.ExternalLocal, ct.Affinity(60))
	tr.SetService(svc)
	tr.SetService(ct.Service("headless", "None", nil))
	tr.SetSlice(ct.Slice("web", "web-0", []discovery.EndpointPort{ct.SlicePort("http", v1.ProtocolTCP, 8080)},
		ct.EP{IP: "10.244.0.5", Node: "n0"}, ct.EP{IP: "10.244.1.5", Node: "n1", NotReady: true}))
	if woken != 3 || tr.Pending() != 2 {
		t.Fatalf("woken %d times, %d pending; want 3 and 2", woken, tr.Pending())
	}
	st, changed, errs := tr.Snapshot()
	if len(errs) != 0 || len(changed) != 2 || tr.Pending() != 0 {
		t.Fatalf("errs %v, changed %v, pending %d", errs, changed, tr.Pending())
	}
	if len(st.Services) != 1 {
		t.Fatalf("services %v: the headless one must be left out", st.Services)
	}
	for name, sp := range st.Services {
		if sp.AffinityTimeoutSeconds != 60 || !sp.ExternalPolicyLocal || sp.NodePort != 0 {
			t.Fatalf("service port %+v", sp)
		}
		eps := st.Endpoints[name]
		if len(eps) != 2 || !eps[0].Local || !eps[0].Ready || eps[0].Port != 8080 || eps[1].Ready || eps[1].Local {
			t.Fatalf("endpoints %+v", eps)
		}
		if u := changes.Usable(eps, false); len(u) != 1 || u[0].IP.String() != "10.244.0.5" {
			t.Fatalf("usable %+v", u)
		}
	}

	tr.DeleteSlice(ct.Slice("web", "web-0", nil))
	st, changed, _ = tr.Snapshot()
	for name := range st.Services {
		if len(st.Endpoints[name]) != 0 || len(changed) != 1 {
			t.Fatalf("after slice delete: endpoints %v changed %v", st.Endpoints[name], changed)
		}
	}
}

func TestBadServiceIsReportedNotFatal(t *testing.T) {
	tr := changes.NewTracker("n0", nil)
	tr.SetService(ct.Service("bad", "10.96.0.300", []v1.ServicePort{ct.Port("", v1.ProtocolTCP, 80, "80", 0)}))
	tr.SetService(ct.Service("good", "10.96.0.3", []v1.ServicePort{ct.Port("", v1.ProtocolTCP, 80, "80", 0)}))
	st, _, errs := tr.Snapshot()
	if len(errs) != 1 || len(st.Services) != 1 {
		t.Fatalf("errs %v services %v", errs, st.Services)
	}
}
