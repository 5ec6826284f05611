package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/ozsecrets/oz/e2e/harness"
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"
)

// scaleSizes are the teams' sizes of the scale section (issue 19).
var scaleSizes = []int{10, 1_000, 10_000, 50_000}

// benchScale measures what a run costs as its team grows: a resolution
// whose allowlist names 10 secrets, in teams of 10 to 50,000 secrets (p50
// at 1 runner and throughput at 64), and `oz secret list` of each team
// (the time to its first line and to its end), each beside the 10-secret
// team's, in the same run.
func benchScale(sys *harness.System, conn *grpc.ClientConn) error {
	fmt.Println("\n== scale: a run whose allowlist names 10 secrets, in teams of growing size, via the gateway (same run) ==")
	type row struct {
		size          int
		p50           time.Duration
		tput          float64
		first, whole  time.Duration
		listed, lines int
	}
	var rows []row
	allow := make([]string, 10)
	for i := range allow {
		allow[i] = fmt.Sprintf("RUN_%02d", i)
	}
	for _, size := range scaleSizes {
		team := fmt.Sprintf("scale-%d", size)
		token, err := scaleTeam(sys, conn, team, size, allow)
		if err != nil {
			return err
		}
		userCtx := harness.WithToken(context.Background(), token)
		resolve, _, err := newRun(sys, conn, userCtx, team, team+"-runner", &scopev1.RunContext{Secrets: &scopev1.SecretNameList{Names: allow}})
		if err != nil {
			return err
		}
		r := row{size: size, p50: latency(resolve), tput: throughput(64, resolve)}
		if r.first, r.whole, r.lines, err = timeSecretList(sys, team, token); err != nil {
			return err
		}
		rows = append(rows, r)
	}
	base := rows[0]
	fmt.Printf("%-16s %12s %8s %12s %8s %14s %14s\n", "team's secrets", "p50 (µs)", "× 10", "runs/s @64", "10 / it", "list: 1st line", "list: all")
	for _, r := range rows {
		fmt.Printf("%-16d %12.0f %8.2f %12.0f %8.2f %12.0fms %12.0fms   (%d lines)\n",
			r.size, us(r.p50), float64(r.p50)/float64(base.p50), r.tput, base.tput/r.tput,
			float64(r.first.Microseconds())/1000, float64(r.whole.Microseconds())/1000, r.lines)
	}
	fmt.Println("targets: the 50,000-secret team within 1.3× of the 10-secret team's p50 and throughput (× 10 and 10 / it ≤ 1.3); its list's first line ≤ 100 ms, all of it ≤ 1 s")
	return benchAuditScale(sys)
}

// scaleTeam makes team, with a user of its own as its admin (so that the
// user's list is the team's), and size secrets: the names of allow, then
// filler, created by 64 clients through the gateway. It returns the
// user's token.
func scaleTeam(sys *harness.System, conn *grpc.ClientConn, team string, size int, allow []string) (string, error) {
	user := team + "-admin"
	for _, s := range [][]string{{"admin", "team", "create", team}, {"admin", "user", "create", user, "--team", team, "--role", "admin"}} {
		if res, err := sys.OZ(sys.AdminToken, nil, nil, s...); err != nil || res.Code != 0 {
			return "", fmt.Errorf("oz %v: %v %s", s, err, res.Stderr)
		}
	}
	res, err := sys.OZ(sys.AdminToken, nil, nil, "admin", "token", "create", "--user", user)
	if err != nil || res.Code != 0 {
		return "", fmt.Errorf("token create: %v %s", err, res.Stderr)
	}
	token := strings.TrimSpace(res.Stdout)
	userCtx := harness.WithToken(context.Background(), token)
	secrets := secretsv1.NewSecretServiceClient(conn)
	// One call first, so that the gateway knows the new token as good:
	// until then each request in flight reserves one of the source's
	// failed authentications (gateway/edge/authgate.go), and 64 at once
	// overdraw them.
	if _, err := secrets.ListAvailableSecrets(userCtx, &secretsv1.ListAvailableSecretsRequest{PageSize: 1}); err != nil {
		return "", fmt.Errorf("first call with %s's token: %w", user, err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= size {
					return
				}
				name := fmt.Sprintf("FILL_%06d", i)
				if i < len(allow) {
					name = allow[i]
				}
				if _, err := secrets.CreateSecret(userCtx, &secretsv1.CreateSecretRequest{
					Parent: "teams/" + team, SecretId: name, Value: []byte("scale-value-0123456789abcdef"),
				}); err != nil {
					errc <- fmt.Errorf("create %s in %s: %w", name, team, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	return token, <-errc
}

// timeSecretList runs `oz secret list --team` in team as its user would
// (token is benchy's) and returns the time to its first line of output, to its end, and how
// many lines it printed.
func timeSecretList(sys *harness.System, team, token string) (first, whole time.Duration, lines int, err error) {
	home := filepath.Join(sys.DataDir, "clihome")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return 0, 0, 0, err
	}
	cmd := exec.Command(filepath.Join(sys.BinDir, "oz"), "--use-team", team, "secret", "list", "--team")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"OZ_ADDR=" + sys.Addr, "OZ_CA_FILE=" + sys.CAFile, "OZ_TOKEN=" + token,
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, 0, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, err
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if lines == 0 {
			first = time.Since(start)
		}
		lines++
	}
	if err := cmd.Wait(); err != nil {
		return 0, 0, 0, fmt.Errorf("oz secret list in %s: %w", team, err)
	}
	return first, time.Since(start), lines, nil
}
