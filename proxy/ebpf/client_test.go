package ebpf

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"testing"
	"time"
)

// clientEnv makes the test binary act as a client process when set, so
// integration tests can run it inside a cgroup and a netns:
// HOIST_BPF_CLIENT=tcp|udp HOIST_BPF_ADDR=ip:port.
const clientEnv = "HOIST_BPF_CLIENT"

func TestMain(m *testing.M) {
	if mode := os.Getenv(clientEnv); mode != "" {
		if err := client(mode, os.Getenv("HOIST_BPF_ADDR")); err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// client prints the server's line and the peer address the socket API
// reports: getpeername for TCP, recvfrom's source for unconnected UDP.
func client(mode, addr string) error {
	switch mode {
	case "tcp":
		c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		fmt.Printf("%s peer=%s\n", line[:len(line)-1], c.RemoteAddr())
	case "udp":
		dst, err := net.ResolveUDPAddr("udp4", addr)
		if err != nil {
			return err
		}
		c, err := net.ListenUDP("udp4", &net.UDPAddr{}) // unconnected: sendmsg4/recvmsg4
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.WriteToUDP([]byte("hi"), dst); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 1500)
		n, from, err := c.ReadFromUDP(buf)
		if err != nil {
			return err
		}
		fmt.Printf("%s peer=%s\n", buf[:n], from)
	default:
		return fmt.Errorf("unknown client mode %q", mode)
	}
	return nil
}
