package etcdv2_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestEtcdV2(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "etcdv2")
}
