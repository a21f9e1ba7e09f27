#!/bin/bash
# Node-level smoke test of the podmig containerd patch (target-side restore in
# CRI StartContainer, roles/component_build/files/patches/containerd/).
#
# usage: containerd_restore_smoke.sh BIN_DIR [WORK_DIR]
#   BIN_DIR   holds the patched containerd, containerd-shim-runc-v2 and ctr
#   WORK_DIR  all state of the test (default /var/tmp/podmig-ctr/smoke)
# environment:
#   PODMIG_SMOKE_TOOLS  dir with bin/crictl and cni/{bridge,host-local,loopback,portmap};
#                       built from the Go module proxy when missing
#                       (default /var/tmp/podmig-ctr/tools)
#   PODMIG_SMOKE_KEEP=1 keep WORK_DIR's containerd root/state after the run
#   PODMIG_SMOKE_LAZY=0 skip the lazy-pages (post-copy) scenario (needs patch 0002)
#
# What it does, on a private containerd (own root, state, socket, runc root,
# CNI dirs, and a private mount namespace whose /run is a tmpfs, so the shims'
# /run/containerd/s sockets never touch the host):
#   1. builds a pause image and a workload image locally (no registry);
#   2. runs the counter workload in sandbox A; its entry point writes a file,
#      deletes one of the image and turns a dir opaque (overlay upper dir);
#   3. runc pause + runc checkpoint --leave-running of A, copies the CRIU images
#      and A's upper dir into <stage>/<mig>/app/{images,upper};
#   4. creates sandbox B annotated podmig.live/restore-from=<stage>/<mig>,
#      crictl create + start (blocks until READY), writes READY (pod=ns/name/uid);
#   5. checks: B RUNNING, counter continued from the dump value (no restart),
#      memory checksum intact (SIGUSR1), upper-dir changes present, READY
#      renamed CONSUMED, a restart (attempt 1) starts fresh, a path outside the
#      allow-list is refused, A still frozen and RUNNING, `runc resume` revives A;
#   6. post-copy: a second source is checkpointed with --lazy-pages and a page
#      server, `criu lazy-pages` runs in the target's work dir, the staging dir
#      gets the lazy-pages marker, and the restore faults the memory in from the
#      source (counter and checksum checked again).
# Prints PASS/FAIL lines with evidence and exits non-zero on any FAIL.
# Cleans up everything it started (by pid / id) on exit.
set -euo pipefail

BIN=$(cd "${1:?usage: $0 BIN_DIR [WORK_DIR]}" && pwd)
W=${2:-/var/tmp/podmig-ctr/smoke}
TOOLS=${PODMIG_SMOKE_TOOLS:-/var/tmp/podmig-ctr/tools}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CRICTL_VERSION=v1.36.0 # v1.35.0 is not served by the module proxy
CNI_VERSION=v1.9.0
BRIDGE=pmcbr0
SUBNET=10.231.99.0/24
CGPARENT=/podmig-smoke-$$
MIG=mig-$$
PAUSE_IMAGE=docker.io/podmig/pause:smoke
APP_IMAGE=docker.io/podmig/smoke-workload:smoke
SOCK=$W/containerd.sock
STAGE=$W/stage # the allow-listed root (PODMIG_RESTORE_ROOTS) of this containerd
PATH_CTRD="$BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

for b in containerd containerd-shim-runc-v2 ctr; do
	[ -x "$BIN/$b" ] || { echo "FAIL: $BIN/$b missing"; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "FAIL: must run as root"; exit 1; }
command -v criu >/dev/null || [ -x /usr/local/sbin/criu ] || { echo "FAIL: criu not found"; exit 1; }

FAILS=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
check() { # check "description" "evidence" cmd...
	local what=$1 ev=$2
	shift 2
	if "$@"; then pass "$what ($ev)"; else fail "$what ($ev)"; fi
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
log() { echo "--- $*"; }

# ---------------------------------------------------------------- tools
ensure_tools() {
	mkdir -p "$TOOLS/bin" "$TOOLS/cni"
	if [ ! -x "$TOOLS/bin/crictl" ]; then
		log "building crictl $CRICTL_VERSION"
		GOBIN=$TOOLS/bin CGO_ENABLED=0 nice -n 19 go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
	fi
	local p missing=()
	for p in bridge host-local loopback portmap; do [ -x "$TOOLS/cni/$p" ] || missing+=("$p"); done
	if [ ${#missing[@]} -gt 0 ]; then
		log "building CNI plugins $CNI_VERSION"
		GOBIN=$TOOLS/cni CGO_ENABLED=0 nice -n 19 go install \
			"github.com/containernetworking/plugins/plugins/main/bridge@$CNI_VERSION" \
			"github.com/containernetworking/plugins/plugins/ipam/host-local@$CNI_VERSION" \
			"github.com/containernetworking/plugins/plugins/main/loopback@$CNI_VERSION" \
			"github.com/containernetworking/plugins/plugins/meta/portmap@$CNI_VERSION"
	fi
}

# ---------------------------------------------------------------- cleanup
CTRD_PID=""
START_PID=""
LAZY_CK_PID=""
LAZY_D_PID=""
PIPE_MAX_OLD=""
MNTNS=""
BRIDGE_OURS=0
cleanup() {
	local rc=$?
	set +e
	[ -n "$START_PID" ] && kill "$START_PID" 2>/dev/null
	[ -n "$LAZY_CK_PID" ] && kill "$LAZY_CK_PID" 2>/dev/null
	[ -n "$LAZY_D_PID" ] && kill "$LAZY_D_PID" 2>/dev/null
	if [ -n "$CTRD_PID" ] && kill -0 "$CTRD_PID" 2>/dev/null; then
		# thaw anything frozen so that stop/kill can finish
		for c in $(cri ps -aq 2>/dev/null); do rnc resume "$c" >/dev/null 2>&1; done
		cri rm --force --all >/dev/null 2>&1
		cri rmp --force --all >/dev/null 2>&1
		kill -TERM "$CTRD_PID" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$CTRD_PID" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$CTRD_PID" 2>/dev/null
	fi
	# Whatever is still in our private mount namespace was started by this test
	# (shims, container processes): end those by pid.
	if [ -n "$MNTNS" ]; then
		local p
		for p in /proc/[0-9]*; do
			[ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$MNTNS" ] && kill -KILL "${p#/proc/}" 2>/dev/null
		done
		# container processes have their own mount namespaces: find them by cgroup
		for p in $(cat /sys/fs/cgroup/pids"$CGPARENT"/*/cgroup.procs 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		sleep 0.5
	fi
	for d in /sys/fs/cgroup/*"$CGPARENT"; do
		[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	[ "$BRIDGE_OURS" = 1 ] && ip link show "$BRIDGE" >/dev/null 2>&1 && ip link del "$BRIDGE"
	[ -n "$PIPE_MAX_OLD" ] && sysctl -qw fs.pipe-max-size="$PIPE_MAX_OLD"
	rm -f "$W/containerd.pid" "$SOCK" "$SOCK.ttrpc" "$W/nri.sock"
	[ -d "$W/hostrun" ] && ! mountpoint -q "$W/hostrun" && rmdir "$W/hostrun"
	if [ "${PODMIG_SMOKE_KEEP:-0}" != 1 ]; then
		# our own dirs only; nothing is mounted there any more (private mount ns is gone)
		for d in root state stage dump dump-lazy runc opt; do
			[ -d "$W/$d" ] && ! grep -qs " $W/$d" /proc/self/mountinfo && rm -rf "${W:?}/$d"
		done
	fi
	echo "--- logs kept in $W/logs"
	if [ "$rc" != 0 ] && [ "$FAILS" = 0 ]; then echo "FAIL: aborted (rc=$rc)"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cri() { "$TOOLS/bin/crictl" -c "$W/crictl.yaml" -r "unix://$SOCK" -i "unix://$SOCK" -t 20s "$@"; }
rnc() { nsenter -t "$CTRD_PID" -m -- runc --root "$W/runc/k8s.io" "$@"; }
ctrc() { "$BIN/ctr" --address "$SOCK" -n k8s.io "$@"; }

# ---------------------------------------------------------------- preparation
if [ -s "$W/containerd.pid" ] && kill -0 "$(cat "$W/containerd.pid")" 2>/dev/null; then
	echo "FAIL: a previous smoke containerd still runs (pid $(cat "$W/containerd.pid"))"
	trap - EXIT
	exit 1
fi
if ip link show "$BRIDGE" >/dev/null 2>&1; then
	echo "FAIL: bridge $BRIDGE already exists; not ours, refusing to run"
	trap - EXIT
	exit 1
fi
ensure_tools
rm -rf "${W:?}"/{root,state,stage,dump,dump-lazy,runc,opt,cni,images,build,logs}
mkdir -p "$W"/logs/pod-smoke-{a,b,c} "$W"/{logs,build/pause,build/app/data,build/app/opq,images,cni/net.d,cni/ipam,stage,dump,runc,opt,nri/plugins,nri/conf.d,image-verifier}

log "building static binaries and images"
gcc -O2 -static -o "$W/build/pause/pause" "$REPO/roles/node_images/files/pause.c"
gcc -O2 -static -o "$W/build/app/smoke-init" "$HERE/smoke-init.c"
gcc -O2 -static -o "$W/build/app/podmig-workload" "$REPO/tools/workload/podmig-workload.c"
echo "image file, to be deleted by the source" > "$W/build/app/data/delete-me"
echo "a" > "$W/build/app/opq/a"
mkdir -p "$W/build/app/etc" "$W/build/pause/etc"
bash "$HERE/mk_oci_image.sh" "$W/build/pause" "$PAUSE_IMAGE" "$W/images/pause.tar" /pause >/dev/null
bash "$HERE/mk_oci_image.sh" "$W/build/app" "$APP_IMAGE" "$W/images/app.tar" \
	/smoke-init /podmig-workload -m 16 -t 10 -l /data/tick.log >/dev/null

cat > "$W/config.toml" <<EOF
version = 3
root = '$W/root'
state = '$W/state'
imports = []

[grpc]
  address = '$SOCK'
[ttrpc]
  address = ''
[debug]
  address = ''

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '$PAUSE_IMAGE'
  [plugins.'io.containerd.cri.v1.runtime']
    # root here lacks CAP_SYS_RESOURCE: the sandbox's oom_score_adj -998 would fail
    restrict_oom_score_adj = true
    enable_cdi = false
    cdi_spec_dirs = []
    netns_mounts_under_state_dir = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          SystemdCgroup = false
          Root = '$W/runc'
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['$TOOLS/cni']
      conf_dir = '$W/cni/net.d'
  [plugins.'io.containerd.grpc.v1.cri']
    disable_tcp_service = true
  [plugins.'io.containerd.nri.v1.nri']
    socket_path = '$W/nri.sock'
    plugin_path = '$W/nri/plugins'
    plugin_config_path = '$W/nri/conf.d'
  [plugins.'io.containerd.internal.v1.opt']
    path = '$W/opt'
  [plugins.'io.containerd.image-verifier.v1.bindir']
    bin_dir = '$W/image-verifier'
EOF
cat > "$W/cni/net.d/10-podmig-smoke.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "podmig-smoke", "plugins": [
  {"type": "bridge", "bridge": "$BRIDGE", "isGateway": false, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$W/cni/ipam", "ranges": [[{"subnet": "$SUBNET"}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}
EOF
printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 20\n' "$SOCK" "$SOCK" > "$W/crictl.yaml"

# ---------------------------------------------------------------- containerd
log "starting private containerd (mount ns with its own /run)"
BRIDGE_OURS=1
env -i PATH="$PATH_CTRD" HOME=/root PODMIG_RESTORE_ROOTS="$STAGE" W="$W" BIN="$BIN" \
	unshare --mount --propagation private -- /bin/bash -c '
		set -e
		mkdir -p "$W/hostrun"
		mount --bind /run "$W/hostrun"
		mount -t tmpfs -o mode=0755,size=64m podmig-smoke-run /run
		if [ -e "$W/hostrun/xtables.lock" ]; then ln -s "$W/hostrun/xtables.lock" /run/xtables.lock; fi
		exec "$BIN/containerd" --config "$W/config.toml" --log-level debug' \
	> "$W/logs/containerd.log" 2>&1 &
CTRD_PID=$!
echo "$CTRD_PID" > "$W/containerd.pid"
for _ in $(seq 150); do
	[ -S "$SOCK" ] && ctrc version >/dev/null 2>&1 && break
	kill -0 "$CTRD_PID" 2>/dev/null || { echo "FAIL: containerd exited"; tail -20 "$W/logs/containerd.log"; exit 1; }
	sleep 0.2
done
ns=$(readlink "/proc/$CTRD_PID/ns/mnt")
# (cleanup ends every process of $MNTNS: it must never be the host's namespace)
[ -n "$ns" ] && [ "$ns" != "$(readlink /proc/self/ns/mnt)" ] || { echo "FAIL: containerd not in a private mount namespace"; exit 1; }
MNTNS=$ns
ctrc images import "$W/images/pause.tar" >/dev/null
ctrc images import "$W/images/app.tar" >/dev/null
for _ in $(seq 50); do cri info 2>/dev/null | grep -q '"NetworkReady"' && break; sleep 0.2; done
cri images | grep -q podmig/smoke-workload || { echo "FAIL: image import"; exit 1; }
pass "private containerd $("$BIN/containerd" --version | awk '{print $3}') pid $CTRD_PID up, images imported"

pod_json() { # name uid [annotation]
	local ann=""
	[ -n "${3:-}" ] && ann="\"podmig.live/restore-from\": \"$3\""
	cat <<EOF
{"metadata": {"name": "$1", "namespace": "podmig-smoke", "uid": "$2", "attempt": 0},
 "hostname": "$1", "log_directory": "$W/logs/pod-$1",
 "linux": {"cgroup_parent": "$CGPARENT"},
 "annotations": {$ann}}
EOF
}
ctr_json() { # attempt
	cat <<EOF
{"metadata": {"name": "app", "attempt": $1}, "image": {"image": "$APP_IMAGE"},
 "log_path": "app-$1.log", "linux": {}}
EOF
}
cinfo() { cri inspect "$1" | jq -r "$2"; }
last_tick() { grep '^T ' "$1" | tail -n 2 | head -n 1 | awk '{print $2}'; } # second-last: complete for sure

# ---------------------------------------------------------------- source A
log "source pod A"
pod_json smoke-a uid-a > "$W/pod-a.json"
ctr_json 0 > "$W/ctr-0.json"
ctr_json 1 > "$W/ctr-1.json"
POD_A=$(cri runp "$W/pod-a.json")
CTR_A=$(cri create --no-pull "$POD_A" "$W/ctr-0.json" "$W/pod-a.json")
cri start "$CTR_A" >/dev/null
PID_A=$(cinfo "$CTR_A" .info.pid)
LOG_A=/proc/$PID_A/root/data/tick.log
for _ in $(seq 100); do [ "$(last_tick "$LOG_A" 2>/dev/null || echo 0)" -gt 150 ] 2>/dev/null && break; sleep 0.1; done
pass "A running: container ${CTR_A:0:12} pid $PID_A, counter $(last_tick "$LOG_A")"

log "pause + checkpoint --leave-running A, stage images and upper dir"
rnc pause "$CTR_A"
sleep 0.3
C_DUMP=$(grep '^T ' "$LOG_A" | tail -n 1 | awk '{print $2}')
S_A=$(head -n 1 "$LOG_A")
UPPER_A=$(grep -o 'upperdir=[^,]*' <(awk '$5 == "/"' "/proc/$PID_A/mountinfo") | head -n 1 | cut -d= -f2)
t0=$(now)
rnc checkpoint --leave-running --image-path "$W/dump/images" --work-path "$W/dump/work" "$CTR_A"
t1=$(now)
APPDIR=$STAGE/$MIG/app
mkdir -p "$APPDIR"
cp -a "$W/dump/images" "$APPDIR/images"
cp -a "$UPPER_A" "$APPDIR/upper"
t2=$(now)
echo "dump $(secs "$t0" "$t1") s ($(du -sh "$W/dump/images" | cut -f1)), stage copy $(secs "$t1" "$t2") s; counter at dump $C_DUMP; upper $UPPER_A"
WH=$(stat -c '%F %t:%T' "$APPDIR/upper/data/delete-me" 2>&1 || true)
OPQ=$(getfattr --absolute-names -n trusted.overlay.opaque --only-values "$APPDIR/upper/opq" 2>/dev/null || true)
check "staged upper holds the whiteout and the opaque dir" "delete-me: $WH; opq opaque=$OPQ" \
	test "$WH" = "character special file 0:0" -a "$OPQ" = y

# ---------------------------------------------------------------- target B
log "target pod B (restore-from $STAGE/$MIG)"
pod_json smoke-b uid-b "$STAGE/$MIG" > "$W/pod-b.json"
POD_B=$(cri runp "$W/pod-b.json")
CTR_B=$(cri create --no-pull "$POD_B" "$W/ctr-0.json" "$W/pod-b.json")
"$TOOLS/bin/crictl" -c "$W/crictl.yaml" -r "unix://$SOCK" -t 150s start "$CTR_B" > "$W/logs/start-b.out" 2>&1 &
START_PID=$!
sleep 2
ST=$(cinfo "$CTR_B" .status.state)
BLOCKED=$(kill -0 "$START_PID" 2>/dev/null && echo "still blocked" || echo "already returned")
check "StartContainer blocks until READY" "after 2 s: crictl start $BLOCKED, state $ST" \
	test "$BLOCKED" = "still blocked" -a "$ST" = CONTAINER_CREATED
tr0=$(now)
# READY names the shell pod the checkpoint is for; containerd refuses any other sandbox.
echo "pod=podmig-smoke/smoke-b/uid-b" > "$APPDIR/READY"
rc_start=0
wait "$START_PID" || rc_start=$?
START_PID=""
tr1=$(now)
RESTORE_S=$(secs "$tr0" "$tr1")
check "crictl start returned after READY" "rc $rc_start in $RESTORE_S s: $(tr '\n' ' ' < "$W/logs/start-b.out")" test "$rc_start" = 0
ST=$(cinfo "$CTR_B" .status.state)
PID_B=$(cinfo "$CTR_B" .info.pid)
check "B is RUNNING" "crictl inspect: $ST, pid $PID_B" test "$ST" = CONTAINER_RUNNING
LOG_B=/proc/$PID_B/root/data/tick.log
sleep 1
check_continued() { # label source-start-line dump-counter target-log
	local s0=$2 c=$3 log=$4 next now starts first
	first=$(head -n 1 "$log" 2>/dev/null)
	# the tick after the dump value must follow it directly, in the one process started in the source
	next=$(awk -v c="$c" '$1 == "T" && $2 == c { getline; print $2; exit }' "$log" 2>/dev/null || true)
	now=$(last_tick "$log" 2>/dev/null || echo -1)
	starts=$(grep -c '^S ' "$log" 2>/dev/null || true)
	check "$1" "source start line '$s0', target start line '$first' ($starts S lines); dump $c, next tick $next, now $now" \
		test "$first" = "$s0" -a "${starts:-0}" = 1 -a "$next" = "$((c + 1))" -a "$now" -gt "$c"
}
check_continued "counter continued in the source's process, not restarted" "$S_A" "$C_DUMP" "$LOG_B"
kill -USR1 "$PID_B"
sleep 0.5
V=$(grep '^V ' "$LOG_B" | tail -n 1)
check "memory intact after restore (SIGUSR1 checksum)" "$V" grep -q '^V [0-9]* ok ' <<< "$V"
check "written file present" "$(cat "/proc/$PID_B/root/data/written.txt" 2>&1)" test -f "/proc/$PID_B/root/data/written.txt"
check "deleted file absent" "$(ls "/proc/$PID_B/root/data/" | tr '\n' ' ')" test ! -e "/proc/$PID_B/root/data/delete-me"
check "opaque dir kept" "opq: $(ls "/proc/$PID_B/root/opq/" | tr '\n' ' ')" \
	test ! -e "/proc/$PID_B/root/opq/a" -a -f "/proc/$PID_B/root/opq/new"
check "READY renamed to CONSUMED" "$(ls "$APPDIR" | tr '\n' ' ')" test -e "$APPDIR/CONSUMED" -a ! -e "$APPDIR/READY"
echo "containerd log: $(grep -a -o 'podmig: container [^ ]* restores from .*)' "$W/logs/containerd.log" | tail -n 1)"

log "restart in B (attempt 1) starts fresh"
CTR_B1=$(cri create --no-pull "$POD_B" "$W/ctr-1.json" "$W/pod-b.json")
ta=$(now)
cri start "$CTR_B1" >/dev/null
tb=$(now)
PID_B1=$(cinfo "$CTR_B1" .info.pid)
sleep 0.5
FIRST=$(grep -m1 '^T ' "/proc/$PID_B1/root/data/tick.log" | awk '{print $2}')
check "attempt 1 is not restored" "started in $(secs "$ta" "$tb") s, first tick $FIRST, start lines $(grep -c '^S ' "/proc/$PID_B1/root/data/tick.log")" \
	test "$FIRST" = 1
cri stop -t 2 "$CTR_B1" >/dev/null

log "allow-list: a restore-from outside $STAGE is refused"
pod_json smoke-c uid-c /tmp/podmig-smoke-not-allowed > "$W/pod-c.json"
POD_C=$(cri runp "$W/pod-c.json")
CTR_C=$(cri create --no-pull "$POD_C" "$W/ctr-0.json" "$W/pod-c.json")
ERR=$(cri start "$CTR_C" 2>&1 || true)
check "outside the allow-list refused" "$(grep -o 'podmig: .*allowed root' <<< "$ERR" | head -n 1 | tr -d '\\')" grep -q 'not below an allowed root' <<< "$ERR"

log "identity: a checkpoint staged for another pod is refused"
mkdir -p "$STAGE/$MIG-thief/app"
cp -a "$W/dump/images" "$STAGE/$MIG-thief/app/images"
echo "pod=podmig-smoke/smoke-b/uid-b" > "$STAGE/$MIG-thief/app/READY"
pod_json smoke-d uid-d "$STAGE/$MIG-thief" > "$W/pod-d.json"
POD_D=$(cri runp "$W/pod-d.json")
CTR_D=$(cri create --no-pull "$POD_D" "$W/ctr-0.json" "$W/pod-d.json")
ERR=$(cri start "$CTR_D" 2>&1 || true)
check "a checkpoint for another pod refused" "$(grep -o 'podmig: .*is for pod [^,]*' <<< "$ERR" | head -n 1 | tr -d '\\')" \
	grep -q 'is for pod podmig-smoke/smoke-b/uid-b, not podmig-smoke/smoke-d/uid-d' <<< "$ERR"
check "the refused checkpoint stays unconsumed" "$(ls "$STAGE/$MIG-thief/app" | tr '\n' ' ')" test -e "$STAGE/$MIG-thief/app/READY"

# ---------------------------------------------------------------- source A: rollback
log "source A: still frozen, RUNNING; runc resume revives it"
CGA=$(awk -F: '$2 == "freezer" { print $3 }' "/proc/$PID_A/cgroup")
FZ=$(cat "/sys/fs/cgroup/freezer$CGA/freezer.state")
STA=$(cinfo "$CTR_A" .status.state)
C1=$(grep '^T ' "$LOG_A" | tail -n 1 | awk '{print $2}')
check "A frozen and RUNNING after the dump" "freezer $FZ, crictl $STA, counter $C1 (dump $C_DUMP)" \
	test "$FZ" = FROZEN -a "$STA" = CONTAINER_RUNNING -a "$C1" = "$C_DUMP"
rnc resume "$CTR_A"
sleep 1
C2=$(last_tick "$LOG_A")
check "runc resume revives A" "counter $C_DUMP -> $C2, $(grep -c '^S ' "$LOG_A") start line(s)" test "$C2" -gt "$C_DUMP"

TIMES="dump $(secs "$t0" "$t1") s, stage copy $(secs "$t1" "$t2") s, restore (READY -> StartContainer returned) $RESTORE_S s"

# ---------------------------------------------------------------- post-copy (lazy pages)
if [ "${PODMIG_SMOKE_LAZY:-1}" = 1 ]; then
	log "post-copy: lazy-pages restore (patch 0002)"
	# CRIU's lazy dump splices pages into pipes bigger than the default limit.
	if [ "$(sysctl -n fs.pipe-max-size)" -lt 4194304 ]; then
		PIPE_MAX_OLD=$(sysctl -n fs.pipe-max-size)
		sysctl -qw fs.pipe-max-size=4194304
	fi
	PORT=$((27000 + $$ % 1000))
	pod_json smoke-lsrc uid-lsrc > "$W/pod-lsrc.json"
	POD_LS=$(cri runp "$W/pod-lsrc.json")
	CTR_LS=$(cri create --no-pull "$POD_LS" "$W/ctr-0.json" "$W/pod-lsrc.json")
	cri start "$CTR_LS" >/dev/null
	PID_LS=$(cinfo "$CTR_LS" .info.pid)
	LOG_LS=/proc/$PID_LS/root/data/tick.log
	for _ in $(seq 100); do [ "$(last_tick "$LOG_LS" 2>/dev/null || echo 0)" -gt 150 ] 2>/dev/null && break; sleep 0.1; done
	pod_json smoke-lb uid-lb "$STAGE/$MIG-lazy" > "$W/pod-lb.json"
	POD_LB=$(cri runp "$W/pod-lb.json")
	CTR_LB=$(cri create --no-pull "$POD_LB" "$W/ctr-0.json" "$W/pod-lb.json")
	"$TOOLS/bin/crictl" -c "$W/crictl.yaml" -r "unix://$SOCK" -t 150s start "$CTR_LB" > "$W/logs/start-lb.out" 2>&1 &
	START_PID=$!

	LZDIR=$STAGE/$MIG-lazy/app
	mkdir -p "$W/dump-lazy/work" "$LZDIR/work"
	mkfifo "$W/dump-lazy/status"
	UPPER_LS=$(grep -o 'upperdir=[^,]*' <(awk '$5 == "/"' "/proc/$PID_LS/mountinfo") | head -n 1 | cut -d= -f2)
	# paused first and --leave-running: after the last page CRIU re-freezes the
	# source instead of killing it, so CRI keeps it RUNNING and kubelet does not
	# restart it (an exited container would be restarted fresh at once)
	lz0=$(now)
	rnc pause "$CTR_LS"
	rnc checkpoint --lazy-pages --leave-running --page-server "127.0.0.1:$PORT" --status-fd 3 \
		--image-path "$W/dump-lazy/images" --work-path "$W/dump-lazy/work" "$CTR_LS" \
		3> "$W/dump-lazy/status" > "$W/logs/lazy-checkpoint.out" 2>&1 &
	LAZY_CK_PID=$!
	dd if="$W/dump-lazy/status" bs=1 count=1 status=none > /dev/null
	lz1=$(now)
	C_LDUMP=$(grep '^T ' "$LOG_LS" | tail -n 1 | awk '{print $2}')
	S_LS=$(head -n 1 "$LOG_LS")
	cp -a "$W/dump-lazy/images" "$LZDIR/images"
	cp -a "$UPPER_LS" "$LZDIR/upper"
	# the engine's part on the target: lazy-pages daemon in the CRIU work dir, marker, READY
	criu lazy-pages --page-server --address 127.0.0.1 --port "$PORT" \
		-D "$LZDIR/images" -W "$LZDIR/work" -o lazy-pages.log > "$W/logs/lazy-pages.out" 2>&1 &
	LAZY_D_PID=$!
	for _ in $(seq 300); do [ -S "$LZDIR/work/lazy-pages.socket" ] && break; sleep 0.01; done
	echo "127.0.0.1:$PORT" > "$LZDIR/lazy-pages"
	lz2=$(now)
	echo "pod=podmig-smoke/smoke-lb/uid-lb" > "$LZDIR/READY"
	rc_start=0
	wait "$START_PID" || rc_start=$?
	START_PID=""
	lz3=$(now)
	check "lazy: crictl start returned" "rc $rc_start; dump (no pages) $(secs "$lz0" "$lz1") s, stage $(secs "$lz1" "$lz2") s, READY -> started $(secs "$lz2" "$lz3") s" \
		test "$rc_start" = 0
	PID_LB=$(cinfo "$CTR_LB" .info.pid)
	ST=$(cinfo "$CTR_LB" .status.state)
	rc_ck=0
	wait "$LAZY_CK_PID" || rc_ck=$?
	LAZY_CK_PID=""
	lz4=$(now)
	wait "$LAZY_D_PID" || true
	LAZY_D_PID=""
	sleep 0.5
	CGL=$(awk -F: '$2 == "freezer" { print $3 }' "/proc/$PID_LS/cgroup" 2>/dev/null)
	FZL=$(cat "/sys/fs/cgroup/freezer$CGL/freezer.state" 2>/dev/null || echo gone)
	STL=$(cinfo "$CTR_LS" .status.state)
	check "lazy: source served every page, stays frozen and RUNNING" "runc checkpoint rc $rc_ck, all pages $(secs "$lz0" "$lz4") s after the freeze; source freezer $FZL, crictl $STL" \
		test "$rc_ck" = 0 -a "$FZL" = FROZEN -a "$STL" = CONTAINER_RUNNING
	LOG_LB=/proc/$PID_LB/root/data/tick.log
	sleep 1
	check "lazy: B' is RUNNING" "crictl inspect: $ST, pid $PID_LB" test "$ST" = CONTAINER_RUNNING
	check_continued "lazy: counter continued in the source's process" "$S_LS" "$C_LDUMP" "$LOG_LB"
	kill -USR1 "$PID_LB"
	sleep 0.5
	V=$(grep '^V ' "$LOG_LB" | tail -n 1)
	check "lazy: memory intact (SIGUSR1 checksum)" "$V" grep -q '^V [0-9]* ok ' <<< "$V"
	SKIPS=$(grep -c 'Lazy restore skips' "$LZDIR/work/restore.log" 2>/dev/null || true)
	check "lazy: memory came through userfaultfd, not the images" "staged images $(du -sh "$LZDIR/images" | cut -f1) (cold dump: $(du -sh "$W/dump/images" | cut -f1)); restore.log: ${SKIPS:-0} 'Lazy restore skips' lines" \
		test "${SKIPS:-0}" -gt 0
	TIMES="$TIMES; lazy: dump $(secs "$lz0" "$lz1") s, READY -> started $(secs "$lz2" "$lz3") s, all pages after $(secs "$lz0" "$lz4") s"
fi

echo "TIMES: $TIMES"
if [ "$FAILS" = 0 ]; then echo "PASS: containerd restore smoke test"; else echo "FAIL: $FAILS check(s) failed"; exit 1; fi
