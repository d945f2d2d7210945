package main

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// version describes this binary from the build information the Go
// toolchain embeds: the main module's version ("(devel)" for a build from
// a checkout), the VCS revision and time, whether the tree had local
// changes, and the Go version.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "node: no build information (built without module support)"
	}
	return formatVersion(info)
}

func formatVersion(info *debug.BuildInfo) string {
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	var b strings.Builder
	fmt.Fprintf(&b, "node %s %s", info.Main.Path, info.Main.Version)
	if rev := settings["vcs.revision"]; rev != "" {
		fmt.Fprintf(&b, " revision %s", rev)
		if settings["vcs.modified"] == "true" {
			b.WriteString(" (modified)")
		}
		if t := settings["vcs.time"]; t != "" {
			fmt.Fprintf(&b, " committed %s", t)
		}
	} else {
		b.WriteString(" revision unknown (not built from a VCS checkout)")
	}
	fmt.Fprintf(&b, " %s", info.GoVersion)
	return b.String()
}
