// Package cnierr builds CNI error results (SPEC "Error" section) with the
// spec's well-known codes, so every hoist plugin reports failures the same way.
package cnierr

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
)

// InvalidConfig is code 7: the network configuration cannot be used as given.
func InvalidConfig(format string, a ...any) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf(format, a...), "")
}

// Decoding is code 6: the configuration is not valid JSON for this plugin.
func Decoding(err error) *types.Error {
	return types.NewError(types.ErrDecodingFailure, "decode network config: "+err.Error(), "")
}

// TryAgain is code 11: a transient condition (e.g. a held lock) that a retry clears.
func TryAgain(format string, a ...any) *types.Error {
	return types.NewError(types.ErrTryAgainLater, fmt.Sprintf(format, a...), "")
}

// Unavailable is code 50: STATUS says the plugin cannot serve ADDs now.
func Unavailable(format string, a ...any) *types.Error {
	return types.NewError(types.ErrPluginNotAvailable, fmt.Sprintf(format, a...), "")
}

// Internal is code 999 with the operation that failed named in the message.
func Internal(op string, err error) error {
	var e *types.Error
	if errors.As(err, &e) {
		return e // keep the specific code of an inner CNI error
	}
	return types.NewError(types.ErrInternal, op+": "+err.Error(), "")
}
