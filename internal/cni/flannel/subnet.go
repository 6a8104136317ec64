package flannel

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/hoist-project/hoist/flannel/subnetenv"
	"github.com/hoist-project/hoist/internal/cni/cnierr"
)

// readSubnetEnv reads and validates subnet.env. Its errors are CNI errors
// that name the file and the cause: code 11 when the file does not exist yet
// (flanneld writes it once it holds a subnet, so a retry can succeed), code 7
// when it is malformed, 999 when it cannot be read.
func readSubnetEnv(path string) (subnetenv.Env, error) {
	env, err := subnetenv.Read(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return env, cnierr.TryAgain("%s", missingReason(path))
	case errors.As(err, new(*fs.PathError)):
		return env, cnierr.Internal("read subnet.env "+path, err)
	case err != nil:
		return env, cnierr.InvalidConfig("subnet.env %s is malformed: %v — flanneld rewrites it when it starts; remove the file and restart flanneld", path, err)
	}
	if err := validate(env); err != nil {
		return env, cnierr.InvalidConfig("subnet.env %s: %v — flanneld rewrites it when it starts; remove the file and restart flanneld", path, err)
	}
	return env, nil
}

// missingReason says why subnet.env is absent and what to check.
func missingReason(path string) string {
	return fmt.Sprintf("subnet.env %s not found: flanneld has not written it yet — is flanneld running on this node "+
		"(and, with the kube subnet manager, does the Node have spec.podCIDR)?", path)
}

// validate checks what the parser cannot: the values fit together.
func validate(env subnetenv.Env) error {
	if !env.Network.Addr().Is4() || !env.Subnet.Addr().Is4() {
		return fmt.Errorf("FLANNEL_NETWORK=%s and FLANNEL_SUBNET=%s must be IPv4 prefixes", env.Network, env.Subnet)
	}
	if env.Subnet.Bits() < env.Network.Bits() || !env.Network.Contains(env.Subnet.Addr()) {
		return fmt.Errorf("FLANNEL_SUBNET=%s is not inside FLANNEL_NETWORK=%s", env.Subnet, env.Network)
	}
	if env.Subnet.Bits() > 30 {
		return fmt.Errorf("FLANNEL_SUBNET=%s leaves no room for pods (want /30 or larger)", env.Subnet)
	}
	if env.MTU < 68 || env.MTU > 65535 {
		return fmt.Errorf("FLANNEL_MTU=%d is out of range 68-65535", env.MTU)
	}
	return nil
}

// statusOf turns a subnet.env error into STATUS's "plugin not available"
// (code 50), keeping the reason.
func statusOf(err error) error {
	var e *types.Error
	if errors.As(err, &e) {
		return cnierr.Unavailable("%s", e.Msg)
	}
	return cnierr.Unavailable("%v", err)
}
