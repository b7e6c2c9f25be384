package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/beevik/ntp"
)

// This file is the service's loop: find the servers, ask them, set the clock, wait.

// Run does rounds of queries until ctx ends (or one round with env.Once). Nothing stops it:
// a source that is missing or wrong, a server that does not answer and a clock that cannot be
// set are each a console line, and it goes on.
func Run(ctx context.Context, env Env) {
	said := "" // the sources' report last logged, said again only when it changes
	failures := 0
	for {
		servers, problems := FindServers(env.Cmdline, env.ServerFiles)
		if report := sourcesReport(env, servers, problems); report != said {
			for line := range strings.SplitSeq(report, "\n") {
				env.Log("%s", line)
			}
			said = report
		}
		wait := env.Interval
		switch {
		case len(servers.Addrs) == 0:
			wait, failures = env.Retry, 0
		case !Round(ctx, env, servers.Addrs, backoff(env.Retry, env.Interval, failures)):
			wait = backoff(env.Retry, env.Interval, failures)
			failures++
		default:
			failures = 0
		}
		if env.Once {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// sourcesReport is the lines about the sources: their problems, then where the servers come
// from, or that there are none.
func sourcesReport(env Env, servers Servers, problems []error) string {
	var lines []string
	for _, p := range problems {
		what := "skipped"
		if _, ok := errors.AsType[*SyntaxError](p); ok {
			what = "server skipped"
		}
		lines = append(lines, fmt.Sprintf("%v; %s", p, what))
	}
	if len(servers.Addrs) > 0 {
		lines = append(lines, fmt.Sprintf("NTP servers from %s: %s", servers.From, strings.Join(servers.Addrs, ", ")))
	} else {
		line := fmt.Sprintf("no NTP servers (%s)", strings.Join(append([]string{cmdlineSource}, env.ServerFiles...), ", "))
		if !env.Once {
			line += "; waiting for one"
		}
		lines = append(lines, line)
	}
	return strings.Join(lines, "\n")
}

// Round asks the servers, corrects the clock with the best answer and logs one line. It reports
// whether a server gave a valid answer; next is the wait it names when none did.
func Round(ctx context.Context, env Env, servers []string, next time.Duration) bool {
	answers := Query(ctx, env, servers)
	best, ok := Best(answers)
	if !ok {
		var why []string
		for _, a := range answers {
			why = append(why, a.Server+": "+describe(a, env.Timeout))
		}
		line := fmt.Sprintf("no valid NTP answer (%s)", strings.Join(why, "; "))
		if !env.Once {
			line += fmt.Sprintf("; trying again in %s", next)
		}
		env.Log("%s", line)
		return false
	}
	offset := best.Resp.ClockOffset
	action := "-dry-run, clock not set"
	if env.Clock != nil {
		var err error
		if action, err = Correct(env.Clock, offset); err != nil {
			action = fmt.Sprintf("cannot set the clock: %v", err)
			if errors.Is(err, syscall.EPERM) {
				action += " (the container needs CAP_SYS_TIME)"
			}
		}
	}
	env.Log("offset %+.3fs from %s (stratum %d): %s", offset.Seconds(), best.Server, best.Resp.Stratum, action)
	return true
}

// Answer is one server's reply, or why there is none to use.
type Answer struct {
	Server string
	Resp   *ntp.Response // nil when the query failed
	Err    error         // the query's error, or why Resp is not valid
}

// Query asks every server at once, each for at most env.Timeout (name lookup included), and
// returns their answers in the servers' order. An answer that fails beevik's Validate has it as
// its Err.
func Query(ctx context.Context, env Env, servers []string) []Answer {
	answers := make([]Answer, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Go(func() {
			opt := ntp.QueryOptions{
				Timeout:       env.Timeout,
				GetSystemTime: env.Now,
				Dialer: func(_, remote string) (net.Conn, error) {
					d := net.Dialer{Timeout: env.Timeout}
					return d.DialContext(ctx, "udp", remote)
				},
			}
			r, err := ntp.QueryWithOptions(s, opt)
			if err == nil {
				err = r.Validate()
			}
			answers[i] = Answer{Server: s, Resp: r, Err: err}
		})
	}
	wg.Wait()
	return answers
}

// Best picks the valid answer with the smallest root distance (half the round trip to a
// reference clock plus its dispersion: the bound on its error), the first one on a tie.
func Best(answers []Answer) (Answer, bool) {
	var best Answer
	found := false
	for _, a := range answers {
		if a.Err != nil || a.Resp == nil {
			continue
		}
		if !found || a.Resp.RootDistance < best.Resp.RootDistance {
			best, found = a, true
		}
	}
	return best, found
}

// describe says in a few words why an answer cannot be used.
func describe(a Answer, timeout time.Duration) string {
	var nerr net.Error
	switch {
	case a.Err == nil:
		return "no error"
	case errors.Is(a.Err, syscall.ECONNREFUSED):
		return "refused"
	case errors.As(a.Err, &nerr) && nerr.Timeout():
		return fmt.Sprintf("no answer within %s", timeout)
	case errors.Is(a.Err, ntp.ErrKissOfDeath) && a.Resp != nil:
		return fmt.Sprintf("kiss of death %q", a.Resp.KissCode)
	}
	return a.Err.Error()
}

// backoff is the wait after failures+1 failed rounds in a row: retry, doubled for each earlier
// failure, never more than limit.
func backoff(retry, limit time.Duration, failures int) time.Duration {
	d := retry
	for range failures {
		if d >= limit/2 {
			return limit
		}
		d *= 2
	}
	return min(d, limit)
}
