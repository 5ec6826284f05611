package main

import (
	"io"
	"os"
	"testing"

	"github.com/ozsecrets/oz/services/internal/kv/boltcheck"
	"github.com/ozsecrets/oz/services/internal/storeflag"
	"github.com/ozsecrets/oz/services/internal/storeid"
)

// TestMain lets the test binary be the child that checks a store file
// (the daemon re-executes itself for it: package boltcheck).
func TestMain(m *testing.M) {
	boltcheck.ServeChild()
	os.Exit(m.Run())
}

// withInit adds --init to a test's start when it is a first start (as
// ozdev does): the store its flags and environment name does not exist and
// the data directory has no manifest; an etcd namespace always (--init
// only gives an id to one without). A start on stores a test made
// otherwise (an earlier layout, a bootstrap) adopts them, as in production.
func withInit(args []string, getenv func(string) string) []string {
	c, err := parse("ozsecretstored", args, getenv, io.Discard)
	if err != nil {
		return args // the start reports it
	}
	if c.daemon.Store.Kind == storeflag.Etcd || storeid.Fresh(c.daemon.DataDir, c.daemon.Store.Path) {
		return append(args[:len(args):len(args)], "--init")
	}
	return args
}
