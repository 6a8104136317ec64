package pki

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CertificateExpiries returns each certificate's NotAfter, keyed "ca",
// "apiserver" and "admin". It reads the files on every call so a certificate
// replaced on disk is reported as it is now.
func (p *PKI) CertificateExpiries() (map[string]time.Time, error) {
	files := map[string]string{"ca": CACertFile, "apiserver": ServingCertFile, "admin": AdminCertFile}
	out := make(map[string]time.Time, len(files))
	for name, file := range files {
		path := filepath.Join(p.Dir, file)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		cert, err := ParseCertPEM(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out[name] = cert.NotAfter
	}
	return out, nil
}

// ExpirySource lists certificate expiry times by name.
type ExpirySource func() (map[string]time.Time, error)

// expiryCollector exports hoist_certificate_expiration_timestamp_seconds.
type expiryCollector struct {
	source ExpirySource
	desc   *prometheus.Desc
}

// NewExpiryCollector returns a Prometheus collector exporting one gauge per
// certificate: its expiry as a Unix timestamp (alert on time() - value).
func NewExpiryCollector(source ExpirySource) prometheus.Collector {
	return &expiryCollector{
		source: source,
		desc: prometheus.NewDesc("hoist_certificate_expiration_timestamp_seconds",
			"Expiry (NotAfter) of a hoist certificate as a Unix timestamp.", []string{"certificate"}, nil),
	}
}

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	exp, err := c.source()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for name, t := range exp {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(t.Unix()), name)
	}
}
