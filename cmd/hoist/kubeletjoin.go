package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/hoist-project/hoist/master/join"
)

// joinFlags are `hoist kubelet`'s bootstrap flags, the values `hoist master`
// prints. Like upstream's --bootstrap-kubeconfig they are used once: the
// first start joins and writes the node's own kubeconfig; later starts find
// that file and never need the token again.
type joinFlags struct{ server, token, caHash string }

func (j *joinFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&j.server, "join-server", "", "join the master at this https URL on first start (with --join-token and --join-ca-cert-hash)")
	fs.StringVar(&j.token, "join-token", "", "the master's join token")
	fs.StringVar(&j.caHash, "join-ca-cert-hash", "", "sha256:HEX pin of the cluster CA the master printed")
}

// given reports whether the flags ask to join (check has passed).
func (j joinFlags) given() bool { return j.server != "" }

// check refuses a partial set, naming what is missing.
func (j joinFlags) check() error {
	var set, missing []string
	for _, f := range []struct{ name, v string }{
		{"--join-server", j.server}, {"--join-token", j.token}, {"--join-ca-cert-hash", j.caHash},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		} else {
			set = append(set, f.name)
		}
	}
	if len(set) == 0 || len(missing) == 0 {
		return nil
	}
	return usageError{fmt.Sprintf("kubelet: %s given without %s: the join flags go together (hoist master prints all three)",
		strings.Join(set, " and "), strings.Join(missing, " and "))}
}

// nodeKubeconfig returns the kubeconfig a joining kubelet runs with:
// kubeconfig if given, else <rootDir>/kubelet.kubeconfig. An existing file
// is used as it is (a restart neither needs a valid token nor re-joins);
// otherwise the node joins as nodeName and the file is written there.
func (j joinFlags) nodeKubeconfig(ctx context.Context, log *slog.Logger, kubeconfig, rootDir, nodeName string) (string, error) {
	path := kubeconfig
	if path == "" {
		path = filepath.Join(rootDir, join.KubeconfigFile)
	}
	if _, err := os.Stat(path); err == nil {
		log.Info("node kubeconfig exists; not joining again (the join flags are unused)", "kubeconfig", path)
		return path, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("kubelet: node kubeconfig: %w", err)
	}
	written, err := join.Join(ctx, join.Config{
		Server: j.server, Token: j.token, CACertHash: j.caHash, NodeName: nodeName, Kubeconfig: path,
	})
	if err != nil {
		return "", fmt.Errorf("kubelet: %w", err) // join's errors name the server and what to check
	}
	log.Info("joined the cluster", "server", j.server, "node", nodeName, "kubeconfig", written)
	return written, nil
}
