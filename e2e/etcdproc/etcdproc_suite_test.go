package etcdproc_test

import (
	"fmt"
	"os"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/e2e/etcdproc"
)

// helperEnv, set to a directory, turns the test binary into a helper that
// starts one member there, prints the member's pid and blocks.
const helperEnv = "ETCDPROC_TEST_HELPER_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperEnv); dir != "" {
		c, err := etcdproc.StartMember(etcdproc.Options{Dir: dir, Output: os.Stderr})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(c.Pid(0))
		select {} // until killed
	}
	os.Exit(m.Run())
}

func TestEtcdproc(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "etcdproc Suite")
}
