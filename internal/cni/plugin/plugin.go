// Package plugin holds what every hoist CNI plugin shares: the spec versions
// it speaks, decoding the common config fields and prevResult, and printing
// a result in the version the runtime asked for.
package plugin

import (
	"encoding/json"
	"io"
	"os"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/hoist-project/hoist/internal/cni/cnierr"
)

// Versions are the spec versions hoist's plugins accept. CHECK needs 0.4.0+
// and STATUS/GC need 1.1.0 (enforced by skel).
var Versions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// About is printed when a plugin runs without CNI_COMMAND.
func About(name string) string { return "hoist CNI plugin " + name }

// DecodeConf decodes the common fields of a plugin config and its prevResult
// (converted to the current result type; nil when absent).
func DecodeConf(stdin []byte) (*types.PluginConf, *current.Result, error) {
	conf := &types.PluginConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, nil, cnierr.Decoding(err)
	}
	if conf.RawPrevResult == nil {
		return conf, nil, nil
	}
	if err := version.ParsePrevResult(conf); err != nil {
		return nil, nil, cnierr.InvalidConfig("prevResult: %v", err)
	}
	prev, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return nil, nil, cnierr.InvalidConfig("prevResult: %v", err)
	}
	return conf, prev, nil
}

// Print writes res converted to cniVersion to stdout.
func Print(res types.Result, cniVersion string) error { return PrintTo(os.Stdout, res, cniVersion) }

// PrintTo writes res converted to cniVersion to w.
func PrintTo(w io.Writer, res types.Result, cniVersion string) error {
	out, err := res.GetAsVersion(cniVersion)
	if err != nil {
		return cnierr.Internal("convert result to "+cniVersion, err)
	}
	return out.PrintTo(w)
}
