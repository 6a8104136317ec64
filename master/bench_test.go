package master

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
)

// benchMaster starts a master for a benchmark (embedded etcd).
func benchMaster(b *testing.B) string {
	return startMasterTB(b)
}

func post(b *testing.B, url string, body []byte) {
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		b.Fatalf("create: HTTP %d", resp.StatusCode)
	}
}

func BenchmarkAPICreateConfigMap(b *testing.B) {
	base := benchMaster(b)
	url := base + "/api/v1/namespaces/default/configmaps"
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			post(b, url, []byte(fmt.Sprintf(cmJSON, fmt.Sprintf("b%d", n.Add(1)), "x")))
		}
	})
}

func BenchmarkAPIList500ConfigMaps(b *testing.B) {
	base := benchMaster(b)
	url := base + "/api/v1/namespaces/default/configmaps"
	for i := range 500 {
		post(b, url, []byte(fmt.Sprintf(cmJSON, fmt.Sprintf("l%d", i), "x")))
	}
	for _, q := range []string{"", "?resourceVersion=0"} {
		b.Run("rv="+q, func(b *testing.B) {
			for b.Loop() {
				resp, err := http.Get(url + q)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
