package etcdkv_test

import (
	"errors"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ozsecrets/oz/lib/etcdtest"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/etcdkv"
)

// TestNoSpace: while etcd's NOSPACE alarm is raised (what a member does
// when its database reaches --quota-backend-bytes; raised here the same
// way, through the maintenance API, on a server of the test's own), a
// write is DiskFull (ResourceExhausted) naming the cluster for the log,
// reads go on, and once the alarm is disarmed the same store writes again.
func TestNoSpace(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	s, err := etcdkv.New(ctx, cli, etcdtest.Prefix())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Apply(ctx, nil, []kv.Write{kv.Put("a", []byte("1"))}); err != nil {
		t.Fatalf("Apply before: %v", err)
	}
	resp, err := cli.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	alarm := &pb.AlarmRequest{MemberID: resp.Header.MemberId, Alarm: pb.AlarmType_NOSPACE}

	alarm.Action = pb.AlarmRequest_ACTIVATE
	if _, err := pb.NewMaintenanceClient(cli.ActiveConnection()).Alarm(ctx, alarm); err != nil {
		t.Fatalf("raise NOSPACE: %v", err)
	}
	err = s.Apply(ctx, []kv.Cond{kv.Absent("b")}, []kv.Write{kv.Put("b", []byte("2"))})
	if k := errs.KindOf(err); k != errs.KindResourceExhausted {
		t.Fatalf("Apply under NOSPACE: got %v (kind %v), want kind %v", err, k, errs.KindResourceExhausted)
	}
	var full *kv.DiskFullError
	if !errors.As(err, &full) || !strings.HasPrefix(full.Where, "etcd ") || !strings.Contains(full.Error(), "database space exceeded") {
		t.Errorf("Apply under NOSPACE: got %v, want a *kv.DiskFullError naming the etcd cluster and etcd's reason", err)
	}
	if st := errs.ToStatus(err); st.Message() != kv.DiskFullMessage {
		t.Errorf("status message: got %q, want %q", st.Message(), kv.DiskFullMessage)
	}
	if v, err := s.Get(ctx, "a"); err != nil || string(v) != "1" {
		t.Errorf("Get under NOSPACE: got %q, %v; want 1", v, err)
	}

	if _, err := cli.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: alarm.MemberID, Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatalf("disarm: %v", err)
	}
	if err := s.Apply(ctx, []kv.Cond{kv.Absent("b")}, []kv.Write{kv.Put("b", []byte("2"))}); err != nil {
		t.Fatalf("Apply after the alarm was disarmed: %v", err)
	}
}
