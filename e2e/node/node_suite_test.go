// The node specs run the reference host binary, cmd/node, as a real process
// on free loopback ports: on its embedded etcd, against an external etcd
// started with e2e/etcdproc, with bad flags, through SIGTERM and through an
// etcd rebuild. The binary is built once per suite (with -race when the
// suite runs with it); every process a spec starts is killed when the spec
// ends.
package node_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestNode(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "node")
}

// nodeBin is the path of the node binary built for this suite.
var nodeBin string

var _ = SynchronizedBeforeSuite(func() []byte {
	dir, err := os.MkdirTemp("", "etcdsync-node-*")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, dir)
	bin := filepath.Join(dir, "node")
	// -buildvcs=auto: --version prints the revision even where GOFLAGS
	// (this machine's go env) turns VCS stamping off.
	args := []string{"build", "-buildvcs=auto", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "github.com/etcdsync/etcdsync/cmd/node")...)
	build.Stdout, build.Stderr = GinkgoWriter, GinkgoWriter
	Expect(build.Run()).To(Succeed(), "go build ./cmd/node")
	return []byte(bin)
}, func(bin []byte) {
	nodeBin = string(bin)
})
