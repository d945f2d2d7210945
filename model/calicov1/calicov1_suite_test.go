package calicov1_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestCalicov1(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "calicov1")
}
