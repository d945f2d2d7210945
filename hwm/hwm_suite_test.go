package hwm_test

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestHWM(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "hwm")
}
