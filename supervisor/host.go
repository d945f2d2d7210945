package supervisor

import (
	"github.com/etcdsync/etcdsync/actors"
	"github.com/etcdsync/etcdsync/internal/etcdv2"
)

// What a host may give the syncer besides Callbacks, declared where hosts
// look, so that a host needs no import of package actors.
type (
	// Observer hears what the actors do, for metrics (Config.Observer).
	Observer = actors.Observer
	// NopObserver ignores everything; embed it to hear only some events.
	NopObserver = actors.NopObserver
	// RelayObserver, when Config.Observer implements it too, hears about
	// the relay streams of a syncer reading from Config.Relays.
	RelayObserver = actors.RelayObserver
	// KeysAPI is the part of client/v2's KeysAPI the syncer calls
	// (Config.KeysAPI).
	KeysAPI = etcdv2.KeysAPI
)
