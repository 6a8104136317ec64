package plugintest

import (
	"encoding/json"
	"testing"
)

// Conf is a plugin config under construction.
type Conf map[string]any

// BridgeConf is a bridge + host-local config with the given ranges (one range set each).
func (e *Env) BridgeConf(version, network, bridge string, subnets ...string) Conf {
	var ranges []any
	for _, s := range subnets {
		ranges = append(ranges, []any{map[string]any{"subnet": s}})
	}
	return Conf{
		"cniVersion": version, "name": network, "type": "bridge", "bridge": bridge,
		"isDefaultGateway": true, "ipMasq": true, "hairpinMode": true,
		"ipam": map[string]any{"type": "host-local", "ranges": ranges, "dataDir": e.DataDir},
	}
}

// IPAM returns the ipam section for editing.
func (c Conf) IPAM() map[string]any { return c["ipam"].(map[string]any) }

// With returns a copy with key set to v.
func (c Conf) With(key string, v any) Conf {
	out := Conf{}
	for k, val := range c {
		out[k] = val
	}
	out[key] = v
	return out
}

// Bytes encodes the config.
func (c Conf) Bytes(t testing.TB) []byte {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// WithPrev returns the config with prevResult set to a plugin's raw ADD output.
func (c Conf) WithPrev(t testing.TB, result []byte) Conf {
	t.Helper()
	var prev map[string]any
	if err := json.Unmarshal(result, &prev); err != nil {
		t.Fatalf("decode result: %v", err)
	}
	return c.With("prevResult", prev)
}
