package etcdsim

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"syscall"

	"go.etcd.io/etcd/client/v2"
)

// etcd v2 error codes the simulation produces (v2error/error.go), beyond
// those client/v2 names.
const (
	codeRefreshValue       = 211
	codeRefreshTTLRequired = 212
)

// errorMessages is v2error's message table, for the codes we produce.
var errorMessages = map[int]string{
	client.ErrorCodeKeyNotFound:       "Key not found",
	client.ErrorCodeTestFailed:        "Compare failed",
	client.ErrorCodeNotFile:           "Not a file",
	client.ErrorCodeNotDir:            "Not a directory",
	client.ErrorCodeNodeExist:         "Key already exists",
	client.ErrorCodeRootROnly:         "Root is read only",
	client.ErrorCodeDirNotEmpty:       "Directory not empty",
	client.ErrorCodeInvalidField:      "Invalid field",
	codeRefreshValue:                  "Value provided on refresh",
	codeRefreshTTLRequired:            "A TTL must be provided on refresh",
	client.ErrorCodeEventIndexCleared: "The event in requested index is outdated and cleared",
}

// etcdError is the error client/v2 returns for an etcd error response: a
// client.Error value, not a pointer.
func etcdError(code int, cause string, index uint64) error {
	return client.Error{Code: code, Message: errorMessages[code], Cause: cause, Index: index}
}

// errInternal stands for an etcd error answered with HTTP 500 (300 "Raft
// Internal Error"); Server.fail turns it into what client/v2 makes of it.
var errInternal = errors.New("etcdsim: internal server error")

// fail turns a store error into the error client/v2 returns for it.
func (s *Server) fail(err error, oneShot bool) error {
	if !errors.Is(err, errInternal) {
		return err
	}
	// client/v2 takes any 500 for a member without a leader and, unless
	// the request is one-shot, tries the next endpoint; with one endpoint
	// it gives up with a ClusterError.
	noLeader := fmt.Errorf("client: etcd member %s has no leader", s.cfg.Endpoint)
	if oneShot {
		return noLeader
	}
	return &client.ClusterError{Errors: []error{noLeader}}
}

// errCutWatch is what client/v2 returns when the connection of a watch
// that is waiting breaks (the member died or restarted): the body read
// fails, and the cluster client wraps that in a ClusterError.
func errCutWatch() error {
	return &client.ClusterError{Errors: []error{io.ErrUnexpectedEOF}}
}

// errRefused is what client/v2 returns for a request to a dead member:
// the dial error, wrapped in a ClusterError unless the request is one-shot
// (Create, Delete), which returns it bare. Neither is a *url.Error:
// client/v2 calls the transport directly.
func (s *Server) errRefused(oneShot bool) error {
	err := &net.OpError{
		Op:   "dial",
		Net:  "tcp",
		Addr: s.addr,
		Err:  os.NewSyscallError("connect", syscall.ECONNREFUSED),
	}
	if oneShot {
		return err
	}
	return &client.ClusterError{Errors: []error{err}}
}

// endpointAddr turns Config.Endpoint into the address a dial error names.
func endpointAddr(endpoint string) *net.TCPAddr {
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2379}
	u, err := url.Parse(endpoint)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil {
		addr.IP = ip
	}
	if p, err := strconv.Atoi(u.Port()); err == nil {
		addr.Port = p
	}
	return addr
}
