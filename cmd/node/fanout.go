package main

import "github.com/etcdsync/etcdsync/messages"

// fanout is the syncer's host when the node also relays: it hands every
// callback to the view and then to the relay server, so both see the same
// stream in the same order. Neither blocks on anything slow (the view
// writes stdout, the relay only appends to its log), so one does not
// delay the other by much. Called as messages.Callbacks promises: one call
// at a time.
type fanout struct {
	view  *view
	relay interface {
		messages.Callbacks
		messages.StatusAtCallback
		messages.ClusterIDUser
	}
}

// OnUpdates implements messages.Callbacks.
func (f fanout) OnUpdates(updates []messages.Update) {
	f.view.OnUpdates(updates)
	f.relay.OnUpdates(updates)
}

// OnStatusUpdated implements messages.Callbacks; the syncer calls
// OnStatusAt instead.
func (f fanout) OnStatusUpdated(s messages.SyncStatus) { f.OnStatusAt(s, 0) }

// OnStatusAt implements messages.StatusAtCallback: the relay needs the
// index, to give its clients a resume position.
func (f fanout) OnStatusAt(s messages.SyncStatus, index uint64) {
	f.view.OnStatusUpdated(s)
	f.relay.OnStatusAt(s, index)
}

// SetClusterIDSource implements messages.ClusterIDUser: the relay labels
// what it is given with the cluster ID.
func (f fanout) SetClusterIDSource(clusterID func() string) { f.relay.SetClusterIDSource(clusterID) }

// ParseFailed implements messages.ParseFailedCallback, for the view only:
// the node refuses --relay-listen with a model (config.go).
func (f fanout) ParseFailed(key, value string) { f.view.ParseFailed(key, value) }

var (
	_ messages.Callbacks           = fanout{}
	_ messages.ParseFailedCallback = fanout{}
	_ messages.StatusAtCallback    = fanout{}
	_ messages.ClusterIDUser       = fanout{}
)
