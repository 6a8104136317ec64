package testenv

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/hoist-project/hoist/internal/nsutil"
)

// HTTPGetFrom GETs url over a TCP connection opened inside the network
// namespace at nsPath ("" for the caller's own) and returns the body of a 200
// answer. The connection is dialled on the thread that nsutil.Do moved into
// the namespace: an http.Client would dial from another goroutine, which runs
// in whatever namespace its thread is in.
func HTTPGetFrom(nsPath, url string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Close = true
	var conn net.Conn
	dial := func() (err error) { conn, err = net.DialTimeout("tcp", req.URL.Host, 2*time.Second); return err }
	if nsPath == "" {
		err = dial()
	} else {
		err = nsutil.Do(nsPath, dial)
	}
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := req.Write(conn); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}
