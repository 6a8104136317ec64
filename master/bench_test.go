package master

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
)

func (m *testMaster) post(b *testing.B, url string, body []byte) {
	resp, err := m.client.Post(url, "application/json", bytes.NewReader(body))
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
	api := startMaster(b, "", nil)
	url := api.URL + "/api/v1/namespaces/default/configmaps"
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			api.post(b, url, []byte(fmt.Sprintf(cmJSON, fmt.Sprintf("b%d", n.Add(1)), "x")))
		}
	})
}

func BenchmarkAPIList500ConfigMaps(b *testing.B) {
	api := startMaster(b, "", nil)
	url := api.URL + "/api/v1/namespaces/default/configmaps"
	for i := range 500 {
		api.post(b, url, []byte(fmt.Sprintf(cmJSON, fmt.Sprintf("l%d", i), "x")))
	}
	for _, q := range []string{"", "?resourceVersion=0"} {
		b.Run("rv="+q, func(b *testing.B) {
			for b.Loop() {
				req, _ := http.NewRequest("GET", url+q, nil)
				resp, err := api.client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}
