package main

import (
	"net"
	"strconv"
)

// role is what a node syncs from, decided once from the command line
// (config.readSource). Any role can add a relay server (--relay-listen).
type role uint8

const (
	// roleEmbedded runs a single-member etcd in-process and syncs from it:
	// no --etcd-endpoints and no --relay-endpoints.
	roleEmbedded role = iota + 1
	// roleExternal syncs from the etcd at --etcd-endpoints.
	roleExternal
	// roleLeaf syncs from the relays at --relay-endpoints and reads no
	// etcd.
	roleLeaf
)

func (r role) String() string {
	switch r {
	case roleEmbedded:
		return "embedded"
	case roleExternal:
		return "external"
	case roleLeaf:
		return "leaf"
	}
	return "role(" + strconv.Itoa(int(r)) + ")"
}

// check validates the flags that depend on the role: it refuses those that
// do not apply to it, naming the flag, and checks those that do.
func (r role) check(c *config, set map[string]bool) error {
	switch r {
	case roleLeaf:
		return checkLeaf(c, set)
	case roleEmbedded:
		return checkEmbedded(c, set)
	default:
		return checkExternal(c, set)
	}
}

// checkLeaf: a leaf reads no etcd, so no etcd flag applies; its own TLS
// certificate comes with its key.
func checkLeaf(c *config, set map[string]bool) error {
	if err := refuseSet(set, "does not apply to a leaf (--relay-endpoints), which reads no etcd",
		append(c.EtcdTLS.flags(), "etcd-username", "embedded-etcd-listen", "embedded-etcd-peer-listen", "data-dir",
			"watch", "cluster-id-poll-interval", "etcd-api")...); err != nil {
		return err
	}
	return c.RelayTLS.check()
}

// checkEmbedded: the embedded etcd needs a client and a peer port of its
// own and a data directory; no external etcd's flag applies, nor a leaf's.
// An empty --embedded-etcd-peer-listen becomes the client port + 1.
func checkEmbedded(c *config, set map[string]bool) error {
	if err := refuseLeafFlags(c, set); err != nil {
		return err
	}
	if err := refuseSet(set, "only applies to an external etcd (--etcd-endpoints)",
		append(c.EtcdTLS.flags(), "etcd-username")...); err != nil {
		return err
	}
	// Port 0 is refused: etcd would advertise it as is.
	if err := checkHostPort("embedded-etcd-listen", c.EmbeddedListen, false); err != nil {
		return err
	}
	if c.EmbeddedPeerListen == "" {
		host, port, _ := net.SplitHostPort(c.EmbeddedListen)
		p, _ := strconv.Atoi(port)
		if p == 65535 {
			return badFlag("embedded-etcd-peer-listen",
				"needed when --embedded-etcd-listen's port is %s (there is no port + 1)", port)
		}
		c.EmbeddedPeerListen = net.JoinHostPort(host, strconv.Itoa(p+1))
	} else if err := checkHostPort("embedded-etcd-peer-listen", c.EmbeddedPeerListen, false); err != nil {
		return err
	}
	if c.EmbeddedPeerListen == c.EmbeddedListen {
		return badFlag("embedded-etcd-peer-listen", "%s is also --embedded-etcd-listen", c.EmbeddedPeerListen)
	}
	if c.DataDir == "" {
		return badFlag("data-dir", "empty")
	}
	return nil
}

// checkExternal: no embedded etcd's flag applies, nor a leaf's; the client
// certificate comes with its key, and a password with a user.
func checkExternal(c *config, set map[string]bool) error {
	if err := refuseLeafFlags(c, set); err != nil {
		return err
	}
	if err := refuseSet(set, "only applies to the embedded etcd, not with --etcd-endpoints",
		"embedded-etcd-listen", "embedded-etcd-peer-listen", "data-dir"); err != nil {
		return err
	}
	if err := c.EtcdTLS.check(); err != nil {
		return err
	}
	return c.EtcdLogin.check()
}

// refuseLeafFlags refuses a leaf's TLS flags on a node that reads etcd.
func refuseLeafFlags(c *config, set map[string]bool) error {
	return refuseSet(set, "only applies to a leaf (--relay-endpoints)", c.RelayTLS.flags()...)
}
