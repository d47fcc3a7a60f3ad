# `laterne ota push`: a staged rollout over the broker the nodes already use. Each node of a
# wave gets its own authenticated offer (retained, so a sleeping node finds it at its next
# wake); the node asks for the files piece by piece and this process answers; the node's
# retained status says how it went. A wave starts only when every node of the one before
# reports the new version healthy; a failure or a timeout halts the rollout, and nodes of
# later waves are never offered the update. State lives in the nodes' statuses, so running
# the same push again resumes where it stopped.
import json
import math
import queue
import secrets
import struct
import time

from host_tools.errors import UserError
from host_tools.fleet.monitor import Connection
from host_tools.ota import bundle as bundles
from host_tools.ota import keys

TERMINAL = ("ok", "refused", "failed", "rolled_back", "timeout", "withdrawn", "not offered")
FAILED = ("refused", "failed", "rolled_back", "timeout", "withdrawn")
SWITCHED = ("switching", "trial")  # past the point where withdrawing the offer stops it
MAX_PIECE = 3072
NUDGE_S = 30.0  # an offer not taken up in this long is published again (see _check_timeouts)


def parse_waves(text, count):
    """Cumulative node counts of the waves: "1,25%,100%" over 10 nodes -> [1, 3, 10]."""
    out = []
    for item in text.split(","):
        item = item.strip()
        try:
            n = math.ceil(count * float(item[:-1]) / 100) if item.endswith("%") else int(item)
        except ValueError:
            raise UserError("--waves %r: %r is not a count or a percentage" % (text, item),
                            "e.g. --waves 1,25%,100% (cumulative: the canary, a quarter, all)")
        if n < 1 or (item.endswith("%") and not 0 < float(item[:-1]) <= 100):
            raise UserError("--waves %r: %r is out of range" % (text, item))
        n = min(n, count)
        if not out or n > out[-1]:
            out.append(n)
    return out


def packet_size(topic, payload, qos):
    """Bytes of one MQTT PUBLISH on the wire."""
    body = 2 + len(topic) + (2 if qos else 0) + len(payload)
    return 1 + (1 if body < 128 else 2 if body < 16384 else 3) + body


class Target:
    """One node of the rollout, as its statuses and requests tell it."""

    def __init__(self, node_id, wave):
        self.node = node_id
        self.wave = wave
        self.status = None      # the newest status message
        self.start = None       # the version it ran when the rollout began
        self.offer = None       # the offer id it was given (or was found working on)
        self.outcome = "waiting"
        self.reason = None
        self.progress = None
        self.offered_at = None
        self.published_at = None  # when its offer was last published
        self.bytes = 0          # MQTT bytes of the update between broker and node
        self.times = {}         # outcome -> monotonic time it was first seen


class Rollout:
    def __init__(self, conn, bundle, master, prefix="laterne", timeout=3600.0,
                 clock=time.monotonic, on_change=None):
        self.conn = conn
        self.bundle = bundle
        self.master = master
        self.prefix = prefix
        self.timeout = timeout
        self.clock = clock
        self.on_change = on_change or (lambda rollout: None)
        self.offer_id = secrets.token_hex(4)
        self.targets = {}       # node id -> Target, in rollout order
        self.seen = {}          # node id -> newest status of every node on the broker
        self.sessions = 0       # broker sessions we published our offers in
        self.halted = None

    # -- nodes and waves -----------------------------------------------------------------------
    def discover(self, settle=1.5):
        """Collect the retained statuses: which nodes exist and what they run."""
        end = self.clock() + settle
        while self.clock() < end:
            self._drain(0.1)

    def plan(self, node_ids, waves_text):
        if node_ids is None:
            node_ids = sorted(self.seen)
            if not node_ids:
                raise UserError("no node has a status on this broker under %s/" % self.prefix,
                                "check --broker and --prefix, or name the nodes with --node")
        waves = parse_waves(waves_text, len(node_ids))
        start = 0
        for w, end in enumerate(waves, 1):
            for node_id in node_ids[start:end]:
                self._add(node_id, w)
            start = end
        for node_id in node_ids[start:]:  # the waves stop short of 100 %
            t = self._add(node_id, None)
            t.outcome, t.reason = "not offered", "beyond the last wave"
        for t in self.targets.values():  # an earlier push that died may have left offers
            self._withdraw(t)
        return len(waves)

    def _add(self, node_id, wave):
        t = Target(node_id, wave)
        t.status = self.seen.get(node_id)
        t.start = (t.status or {}).get("fw")
        self.targets[node_id] = t
        return t

    # -- running -------------------------------------------------------------------------------
    def run(self, wave_count):
        """Roll out wave by wave; True when every node of every wave ended ok."""
        try:
            for w in range(1, wave_count + 1):
                wave = [t for t in self.targets.values() if t.wave == w]
                for t in wave:
                    self._begin(t)
                self.on_change(self)
                while any(t.outcome not in TERMINAL for t in wave):
                    self._drain(0.2)
                    self._check_timeouts(wave)
                    if self.halted is None and any(t.outcome in FAILED for t in wave):
                        self._halt(wave)
                if self.halted is None and any(t.outcome in FAILED for t in wave):
                    self._halt(wave)
                if self.halted is not None:
                    return False
            return all(t.outcome == "ok" for t in self.targets.values() if t.wave)
        except KeyboardInterrupt:
            self.halted = "interrupted"
            self._withdraw_unswitched("interrupted by the operator")
            raise

    def _begin(self, t):
        st = t.status or {}
        upd = st.get("update") or {}
        if st.get("fw") == self.bundle.version and upd.get("result") != "trial":
            return self._set(t, "ok", "already running %s" % self.bundle.version)
        t.offered_at = self.clock()
        if st.get("fw") == self.bundle.version:  # on trial from an earlier push: wait for it
            t.offer = upd.get("offer")
            return self._set(t, "trial", None)
        t.offer = self.offer_id
        self._publish_offer(t)
        self._set(t, "offered", None)

    def _publish_offer(self, t):
        node_key = keys.node_key(self.master, t.node)
        message = bundles.offer(self.bundle, t.node, node_key, self.offer_id)
        topic = "%s/%s/ota/offer" % (self.prefix, t.node)
        self.conn.client.publish(topic, message, qos=1, retain=True)
        t.published_at = self.clock()
        t.bytes += packet_size(topic, message.encode(), 1)

    def _withdraw(self, t):
        self.conn.client.publish("%s/%s/ota/offer" % (self.prefix, t.node), b"", qos=1,
                                 retain=True)

    def _halt(self, wave):
        failed = [t for t in wave if t.outcome in FAILED]
        self.halted = "%s %s" % (failed[0].node, failed[0].outcome)
        self._withdraw_unswitched("rollout halted: %s" % self.halted)
        for t in self.targets.values():
            if t.outcome == "waiting":
                self._set(t, "not offered", "rollout halted after wave %d" % wave[0].wave)

    def _withdraw_unswitched(self, why):
        for t in self.targets.values():
            if t.outcome in ("offered", "downloading"):
                self._withdraw(t)
                self._set(t, "withdrawn", why)

    def _check_timeouts(self, wave):
        now = self.clock()
        for t in wave:
            if t.outcome == "offered" and t.offer == self.offer_id \
                    and now - t.published_at > NUDGE_S:
                # a retained message reaches a subscribed node again when published again: a
                # node that could not take the offer (out of memory, say) gets another chance
                self._publish_offer(t)
            if t.outcome not in TERMINAL and t.offered_at is not None \
                    and now - t.offered_at > self.timeout:
                last = t.outcome + (" %d%%" % t.progress if t.outcome == "downloading" else "")
                self._set(t, "timeout", "no healthy report within %d s (last: %s)"
                          % (self.timeout, last))

    def _set(self, t, outcome, reason):
        if outcome == t.outcome and reason == t.reason:
            return
        t.outcome, t.reason = outcome, reason
        t.times.setdefault(outcome, self.clock())
        if outcome in TERMINAL and t.offer is not None:
            self._withdraw(t)  # done with it, whatever happened: no retained offer is left
        self.on_change(self)

    # -- messages ------------------------------------------------------------------------------
    def _drain(self, wait):
        if self.conn.sessions != self.sessions:  # a new broker session (the broker restarted?)
            self.sessions = self.conn.sessions
            for t in self.targets.values():
                if t.offer == self.offer_id and t.outcome in ("offered", "downloading"):
                    self._publish_offer(t)  # retained messages may have gone with the broker
        try:
            topic, payload = self.conn.inbox.get(timeout=wait)
        except queue.Empty:
            return
        parts = topic.split("/")
        if len(parts) < 3:
            return
        node_id = parts[-2] if parts[-1] == "status" else parts[-3]
        if parts[-1] == "status":
            self._on_status(node_id, payload)
        elif parts[-2:] == ["ota", "get"] and node_id in self.targets:
            self._on_request(self.targets[node_id], topic, payload)

    def _on_status(self, node_id, payload):
        try:
            st = json.loads(payload)
        except ValueError:
            return
        if not isinstance(st, dict) or st.get("online") is False:
            return  # a last will: a restart (the switch) or a power cut; the node comes back
        self.seen[node_id] = st
        t = self.targets.get(node_id)
        if t is None:
            return
        t.status = st
        if t.outcome in TERMINAL or t.offer is None:
            return
        upd = st.get("update") or {}
        if upd.get("offer") != t.offer:
            return  # news from before this offer
        result = upd.get("result")
        if result == "ok" and st.get("fw") == self.bundle.version:
            self._set(t, "ok", None)
        elif result in FAILED:
            why = upd.get("reason") or result
            crash = st.get("crash")
            if result == "rolled_back" and crash:
                why += ": " + crash.strip().splitlines()[-1]
            self._set(t, result, why)
        elif result == "downloading":
            t.progress = upd.get("progress")
            if t.outcome == "offered":
                self._set(t, "downloading", None)
        elif result in SWITCHED:
            self._set(t, result, None)

    def _on_request(self, t, topic, payload):
        t.bytes += packet_size(topic, payload, 0)
        try:
            req = json.loads(payload)
            index, offset, size = req["file"], req["offset"], req["size"]
            name, length, _sha = self.bundle.files[index]
        except (ValueError, KeyError, IndexError, TypeError):
            return
        if req.get("offer") != self.offer_id or t.offer != self.offer_id \
                or t.outcome not in ("offered", "downloading") \
                or not (isinstance(offset, int) and 0 <= offset < length) \
                or not (isinstance(size, int) and 0 < size):
            return
        piece = self.bundle.data[name][offset:offset + min(size, MAX_PIECE)]
        head = bytes.fromhex(self.offer_id) + struct.pack(">HI", index, offset)
        out = "%s/%s/ota/chunk" % (self.prefix, t.node)
        self.conn.client.publish(out, head + piece, qos=0)
        t.bytes += packet_size(out, head + piece, 0)
        done = sum(f[1] for f in self.bundle.files[:index]) + offset + len(piece)
        t.progress = done * 100 // self.bundle.size()
        if t.outcome == "offered":
            self._set(t, "downloading", None)
        else:
            self.on_change(self)


class PushConnection(Connection):
    """The monitor's broker connection, also subscribed to the nodes' update requests;
    `sessions` counts connections, so offers are published again after a broker restart."""

    def __init__(self, url, prefix, username=None, password=None, cafile=None):
        Connection.__init__(self, url, prefix, username, password, cafile,
                            client_id="laterne-ota-push-%s" % secrets.token_hex(3))
        self.sessions = 0

    def _on_connect(self, client, userdata, flags, reason, props):
        Connection._on_connect(self, client, userdata, flags, reason, props)
        if not reason.is_failure:
            client.subscribe(self.prefix + "/+/ota/get", 0)
            self.sessions += 1
