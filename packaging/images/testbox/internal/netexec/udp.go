package netexec

import (
	"errors"
	"net"
	"strings"
)

// ServeUDP answers datagrams on conn until it is closed: "hostname" gets the
// hostname, "echo X" gets X, "clientip" gets the sender's ip:port.
func ServeUDP(conn net.PacketConn, hostname string) error {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		reply := udpReply(strings.TrimSpace(string(buf[:n])), hostname, from)
		if _, err := conn.WriteTo([]byte(reply), from); err != nil && errors.Is(err, net.ErrClosed) {
			return nil
		}
	}
}

func udpReply(msg, hostname string, from net.Addr) string {
	switch {
	case msg == "hostname":
		return hostname
	case msg == "clientip":
		return from.String()
	case msg == "echo" || strings.HasPrefix(msg, "echo "):
		return strings.TrimPrefix(strings.TrimPrefix(msg, "echo"), " ")
	default:
		return "unknown command " + msg
	}
}
