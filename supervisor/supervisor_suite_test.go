package supervisor_test

import (
	"log/slog"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/etcdsync/etcdsync/supervisor"
)

func TestSupervisor(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "supervisor")
}

var (
	logger *slog.Logger
	system *actor.ActorSystem
)

var _ = BeforeSuite(func() {
	logger = slog.New(slog.NewTextHandler(GinkgoWriter, &slog.HandlerOptions{Level: slog.LevelDebug}))
	system = supervisor.NewSystem(logger)
	DeferCleanup(system.Shutdown)
})
