package iptables_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	ct "github.com/hoist-project/hoist/proxy/changes/changestest"
	"github.com/hoist-project/hoist/proxy/iptables"
)

// fakeRunner answers iptables commands from a script and records them.
type fakeRunner struct {
	version      string
	otherSave    string
	failRestores int // fail this many restores from now on
	calls        []string
	restores     []string
}

func (f *fakeRunner) Run(_ context.Context, stdin []byte, argv ...string) ([]byte, error) {
	f.calls = append(f.calls, strings.Join(argv, " "))
	switch argv[0] {
	case "iptables":
		if argv[1] == "--version" {
			return []byte(f.version), nil
		}
		return nil, nil // every jump already exists
	case "iptables-save":
		return []byte("*" + argv[2] + "\n:KUBE-SVC-OLD - [0:0]\nCOMMIT\n"), nil
	case "iptables-legacy-save", "iptables-nft-save":
		return []byte(f.otherSave), nil
	case "iptables-restore":
		if f.failRestores > 0 {
			f.failRestores--
			return []byte("line 3 failed"), errors.New("iptables-restore: exit status 1")
		}
		f.restores = append(f.restores, string(stdin))
		return nil, nil
	}
	return nil, errors.New("unexpected command " + argv[0])
}

func TestDetectBackend(t *testing.T) {
	ctx := context.Background()
	f := &fakeRunner{version: "iptables v1.8.9 (nf_tables)\n"}
	if b, err := iptables.DetectBackend(ctx, f); err != nil || b != iptables.BackendNft {
		t.Fatalf("nft host: %v %v", b, err)
	}
	f.otherSave = "*nat\n:KUBE-SERVICES - [0:0]\nCOMMIT\n"
	if _, err := iptables.DetectBackend(ctx, f); err == nil || !strings.Contains(err.Error(), "KUBE-* chains exist in the legacy backend") {
		t.Fatalf("mismatch not refused: %v", err)
	}
	f = &fakeRunner{version: "iptables v1.8.9 (legacy)\n"}
	if b, err := iptables.DetectBackend(ctx, f); err != nil || b != iptables.BackendLegacy {
		t.Fatalf("legacy host: %v %v", b, err)
	}
	f.version = "iptables v1.4.21"
	if _, err := iptables.DetectBackend(ctx, f); err == nil {
		t.Fatal("unknown backend accepted")
	}
}

func TestApplierFallsBackToFullSync(t *testing.T) {
	ctx := context.Background()
	fx := newFixture(t)
	webService(fx)
	webSlices(fx, []ct.EP{{IP: "10.244.1.5", Node: "n1"}}, nil)
	rs1, _ := fx.render(cfg)
	run := &fakeRunner{}
	a := iptables.NewApplier(run)

	res, err := a.Apply(ctx, rs1, false)
	if err != nil || !res.Full || len(run.restores) != 1 || !strings.Contains(run.restores[0], "-X KUBE-SVC-OLD") {
		t.Fatalf("first apply: %+v %v %q", res, err, run.restores)
	}
	if res, err := a.Apply(ctx, rs1, false); err != nil || res.Full || len(run.restores) != 1 {
		t.Fatalf("unchanged apply wrote something: %+v %v", res, err)
	}

	fx.tr.SetSlice(ct.Slice("web", "web-a", []discovery.EndpointPort{ct.SlicePort("http", v1.ProtocolTCP, 8080)}, ct.EP{IP: "10.244.1.6", Node: "n1"}))
	rs2, _ := fx.render(cfg)
	run.failRestores = 1
	res, err = a.Apply(ctx, rs2, false)
	if err != nil || !res.Full || res.RestoreFailures != 1 || len(run.restores) != 2 {
		t.Fatalf("failed partial not retried as full: %+v %v", res, err)
	}
	run.failRestores = 2
	if res, err = a.Apply(ctx, rs1, false); err == nil || res.RestoreFailures != 2 {
		t.Fatalf("failed full sync not reported: %+v %v", res, err)
	}
	if res, err = a.Apply(ctx, rs1, false); err != nil || !res.Full {
		t.Fatalf("after a failure the next sync must be full: %+v %v", res, err)
	}
}
