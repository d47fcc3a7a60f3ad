# The durable spool: the node's store-and-forward queue of readings on flash (littlefs).
# Files under root + "spool/" (the why is in docs/spool.md):
#   r/0..5          slot ring: an append overwrites ONE tiny file with one 20-byte record,
#                   the cheapest durable write littlefs has (one small metadata commit)
#   c/0..33         chunk ring: every 6th append copies the 6 newest records into one file
#   s<base>_<n>     sealed segment: every 204th append seals the 34 chunks into one 4080-byte
#                   file (one flash block); <base> is its first seq (8 hex digits), <n> the
#                   number of readings in it
#   a, b            state, written alternately: released-through seq, dropped count, reservation
#   t               a damaged segment being rewritten under its own name (renamed over it)
# A record's place is a function of its seq: slot seq%6, chunk (seq//6)%34, segment
# seq//204*204, so recovery reads only the state, the directory, six slots and at most one
# chunk and 34 chunks to finish an interrupted seal. Every record carries its seq and a CRC
# (laterne/reading.py: the record and the reading's field order).
import os
import struct

from laterne import reading as rec

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

R = const(6)                  # records per chunk (120 bytes: fits littlefs' 128-byte inline)
C = const(34)                 # chunks per segment
S = const(204)                # records per segment
_RS = const(20)               # record size
_CHUNK = const(120)
_BLOCK = const(4096)
_OVERHEAD = const(49152)      # littlefs metadata of spool/, r/, c/ (measured: 11 blocks) + 1
_RTC_MAGIC = const(0x4C52)
_TMP = "t"                    # a segment being rewritten under its own name
_STATE_SIZE = const(22)


class _Rows:
    """A sink for Spool.read(): up to `room` records as reading tuples in `rows` (without a
    list it only looks, as depth() does to find holes)."""

    def __init__(self, room, rows=None):
        self.room = room
        self.rows = rows

    def add(self, buf, off):
        self.room -= 1
        if self.rows is not None:
            self.rows.append(rec.unpack(buf, off))


# The state (written alternately to two files): generation, released-through seq (acked or
# dropped), dropped count, and two seq reservations that next_seq never goes below: one for
# a bulk write in progress, one for the readings held in RTC memory. CRC-16 at the end.
def _pack_state(gen, floor, dropped, reserve, rtc_reserve):
    b = bytearray(_STATE_SIZE)
    struct.pack_into("<IIIII", b, 0, gen, floor, dropped, reserve, rtc_reserve)
    struct.pack_into("<H", b, 20, rec.crc16(b, 0, 20))
    return b


def _unpack_state(b):
    """(gen, floor, dropped, reserve, rtc_reserve) or None if the bytes are not a state."""
    if len(b) != _STATE_SIZE or rec.crc16(b, 0, 20) != b[20] | (b[21] << 8):
        return None
    return struct.unpack_from("<IIIII", b, 0)


def _mkdir(path):
    try:
        os.mkdir(path[:-1] if path.endswith("/") else path)
    except OSError:
        pass


def _read_into(path, buf):
    """Bytes read into buf (at most len(buf)); -1 when the file cannot be opened."""
    try:
        f = open(path, "rb")
    except OSError:
        return -1
    try:
        n = f.readinto(buf)
        return n or 0
    except OSError:
        return -1
    finally:
        f.close()


def _write(path, data):
    f = open(path, "wb")
    try:
        f.write(data)
    finally:
        f.close()


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _seg_name(base, n):
    return "s%08x_%03d" % (base, n)


def _parse_seg(name):
    """(base, n) of a segment file name, or None for anything else."""
    if len(name) != 13 or name[0] != "s" or name[9] != "_":
        return None
    try:
        return int(name[1:9], 16), int(name[10:])
    except ValueError:
        return None


class Spool:
    def __init__(self, root, capacity_bytes=262144, rtc=None, rtc_loss_ok=False,
                 rtc_batch=30):
        self.dir = root + "spool/"
        for d in (self.dir, self.dir + "r/", self.dir + "c/"):
            _mkdir(d)
        self.capacity_bytes = capacity_bytes
        self.max_segments = max(2, (capacity_bytes - _OVERHEAD) // _BLOCK)
        self.corrupt = 0        # corrupt records/files met since this boot
        self.dropped = 0        # readings dropped by capacity overflow (persistent)
        self._floor = 0         # every seq <= floor is released (acked or dropped)
        self._gen = 0
        self._reserve = 0       # next seq never goes below this (a bulk write was cut)
        self._rtc_reserve = 0   # nor below this when the RTC memory was lost
        self._fn = 1            # next seq on flash
        self._segs = []         # sealed segments, oldest first: their bases ...
        self._segn = []         # ... and counts (small ints: no heap objects, no holes)
        self._bad = []          # unacked seqs peek found unreadable though counted in depth()
        self._scan = 0          # highest seq peek has examined
        self._counted = False   # depth() has looked at the unsealed seqs this boot
        self._head = None       # (base, n, floor) that _head_n was counted for
        self._head_n = 0
        self._rbuf = bytearray(_RS)
        self._cbuf = bytearray(_CHUNK)   # the current chunk: RAM mirror of the slots
        self._kbuf = bytearray(_CHUNK)   # scratch: a chunk or the slot ring read from flash
        self._obuf = bytearray(_CHUNK)   # scratch: a chunk's worth of a segment file
        self._rtc = rtc
        self._rtc_fast = rtc is not None and rtc_loss_ok
        self._rtc_batch = max(1, min(rtc_batch, 100))
        # the RTC image: a header only, unless readings are held there (fast path on, or
        # found at boot from an earlier config: see _load_rtc)
        self._rtc_img = bytearray(4 + (self._rtc_batch * _RS if self._rtc_fast else 0))
        self._rtc_n = 0
        self._recover()

    # -- public ---------------------------------------------------------------------------
    @property
    def next_seq(self):
        if self._rtc_n:
            return rec.check(self._rtc_img, 4 + (self._rtc_n - 1) * _RS) + 1
        return self._fn

    def append(self, reading):
        """Store one reading; durable on flash when it returns (or held in RTC memory on the
        fast path). Returns its seq."""
        if self._rtc_fast:
            return self._rtc_append(reading)
        s = self._fn
        rec.pack_into(self._rbuf, 0, s, reading)
        _write(self._slot(s), self._rbuf)
        self._cbuf[(s % R) * _RS:(s % R + 1) * _RS] = self._rbuf
        self._fn = s + 1
        if s % R == R - 1:
            self._finish_chunk(s - R + 1)
        return s

    def extend(self, readings):
        """Store many readings in few flash writes; all durable when it returns. Returns the
        last seq (next_seq - 1 when readings is empty)."""
        if self._rtc_n:
            self.flush()
        n = len(readings)
        if n == 0:
            return self.next_seq - 1
        if n == 1:
            return self.append(readings[0]) if not self._rtc_fast else self._store1(readings[0])
        first = self._fn
        # records that complete a chunk go to the chunk file only: reserve their seqs first so
        # a cut midway can never hand one out again
        self._reserve = max(self._reserve, first + n)
        self._write_state()
        for r in readings:
            rec.pack_into(self._rbuf, 0, self._fn, r)
            self._put(self._rbuf, 0)
        self._commit_tail(first)
        return self._fn - 1

    def flush(self):
        """Move the readings held in RTC memory to flash (one extend) and clear them."""
        if not self._rtc_n:
            return
        first = self._fn
        img = self._rtc_img
        # chunk-only records again (see extend): reserve up to the last one first
        self._reserve = max(self._reserve, self.next_seq)
        self._write_state()
        for i in range(self._rtc_n):
            if rec.check(img, 4 + i * _RS) >= self._fn:
                self._put(img, 4 + i * _RS)
        self._commit_tail(first)
        self._rtc_n = 0
        self._rtc_store()

    def peek(self, max_n, after=None):
        """Up to max_n unacknowledged readings (seq, ts, t, p, h, flags, boot), oldest first;
        with `after`, only those with a larger seq (batches already in flight are skipped)."""
        rows = _Rows(max_n, [])
        self.read(rows, after)
        return rows.rows

    def read(self, sink, after=None):
        """peek() without a tuple per reading: each unacknowledged record, oldest first, goes
        to sink.add(buf, off) (a reading.SIZE record at buf[off]) while sink.room > 0; add()
        lowers room. Records are valid (CRC checked); buf is only good during the call."""
        if self._rtc_n:
            self.flush()
        s = self._floor + 1 if after is None else max(self._floor, after) + 1
        fn = self._fn
        seal_end = fn - fn % S
        for base in self._segs:
            if sink.room <= 0:
                return
            if base + S <= s:
                continue
            s = max(s, base)
            self._peek_segment(base, s, sink)
            s = base + S
        self._peek_unsealed(max(s, seal_end), sink)

    def _peek_unsealed(self, s, sink):
        fn = self._fn
        chunk_end = fn - fn % R
        while s < chunk_end and sink.room > 0:
            cs = s - s % R
            n = _read_into(self._chunk(cs), self._kbuf)
            s = self._take(self._kbuf, max(n, 0), cs, s, cs + R, sink)
        if s < fn and sink.room > 0:
            self._take(self._cbuf, _CHUNK, chunk_end, s, fn, sink)

    def ack(self, up_to_seq):
        """Release every reading with seq <= up_to_seq (durable when it returns)."""
        try:
            up = int(up_to_seq)
        except (TypeError, ValueError):
            return
        if self._rtc_n and up >= self._fn:
            self.flush()
        up = min(up, self._fn - 1)
        if up <= self._floor:
            return
        self._floor = up
        self._write_state()
        while self._segs and self._segs[0] + S - 1 <= up:
            self._pop_segment()
        self._bad = [b for b in self._bad if b > up]

    def depth(self):
        """Readings stored and not acknowledged (RTC-held ones included)."""
        fl = self._floor
        fn = self._fn
        if not self._counted:  # once per boot: find the holes among the unsealed seqs
            self._counted = True
            self._peek_unsealed(max(fl + 1, fn - fn % S), _Rows(S))
        d = 0
        exact_to = fl  # _bad entries up to here are already left out of the counts below
        for i in range(len(self._segs)):
            base, n = self._segs[i], self._segn[i]
            if base > fl:
                d += n  # the name counts the readings the segment was sealed with
            elif base + S - 1 > fl:
                d += self._head_live(base, n)
                exact_to = base + S - 1
        start = max(fl + 1, fn - fn % S)
        if fn > start:
            d += fn - start
        return d - len([b for b in self._bad if b > exact_to]) + self._rtc_n

    def _head_live(self, base, n):
        """Valid readings above the floor in the partly acknowledged oldest segment."""
        key = (base, n, self._floor)
        if self._head != key:
            self._head_n = self._live(base, n)
            self._head = key
        return self._head_n

    def _live(self, base, n):
        """Valid readings above the floor in the segment file (read a chunk's worth at a
        time: a whole segment would be 4 KB of heap)."""
        live = 0
        try:
            f = open(self.dir + _seg_name(base, n), "rb")
        except OSError:
            return 0
        ob = self._obuf
        try:
            while True:
                got = f.readinto(ob)
                if not got:
                    break
                for i in range(got // _RS):
                    if rec.check(ob, i * _RS) > self._floor:
                        live += 1
        except OSError:
            pass  # unreadable from here on: what was read counts
        finally:
            f.close()
        return live

    def stats(self):
        return {"depth": self.depth(), "dropped": self.dropped, "corrupt": self.corrupt,
                "next_seq": self.next_seq, "acked": self._floor, "segments": len(self._segs),
                "rtc_held": self._rtc_n}

    # -- writing --------------------------------------------------------------------------
    def _slot(self, s):
        return "%sr/%d" % (self.dir, s % R)  # made when needed: 40 paths kept cost 1.3 KB

    def _chunk(self, s):
        return "%sc/%d" % (self.dir, (s // R) % C)

    def _store1(self, reading):
        """One reading straight to flash (slot first), even on the RTC fast path."""
        fast = self._rtc_fast
        self._rtc_fast = False
        try:
            return self.append(reading)
        finally:
            self._rtc_fast = fast

    def _put(self, src, off):
        """Place a packed record (its seq >= next flash seq) into the current chunk."""
        s = rec.check(src, off)
        self._skip_to(s)
        p = (s % R) * _RS
        self._cbuf[p:p + _RS] = src[off:off + _RS]
        if src is not self._rbuf:
            self._rbuf[:] = src[off:off + _RS]  # _commit_tail may need the newest record
        self._advance()

    def _advance(self):
        s = self._fn
        self._fn = s + 1
        if s % R == R - 1:
            self._finish_chunk(s - R + 1)

    def _skip_to(self, target, known=True):
        """Move the next flash seq up to target; the skipped seqs become holes. Readings
        already buffered are first made safe in their chunk (and segment). known=False at
        boot, where a cut bulk write may have left readings in the skipped range."""
        if target <= self._fn:
            return
        if known:
            for b in range(max(self._fn, self._floor + 1), target):
                self._bad.append(b)
        if target - target % R == self._fn - self._fn % R:
            self._fn = target  # same chunk: the positions in between stay holes
            return
        if self._fn % R:  # finish the partial chunk (sealing at a group end)
            cs = self._fn - self._fn % R
            self._fn = cs + R
            self._finish_chunk(cs, True)
        if self._fn % S and target >= self._fn - self._fn % S + S:
            self._seal(self._fn - self._fn % S)  # the group is left: seal what it holds
        self._fn = target
        rec.fill_holes(self._cbuf)

    def _commit_tail(self, first):
        """Make the records of the unfinished chunk that only exist in RAM durable. When the
        bulk write ended on a chunk boundary, its newest record still goes to its slot: the
        slots always prove the next seq, so the next boot has nothing to work out."""
        fn = self._fn
        for s in range(max(first, fn - fn % R), fn):
            p = (s % R) * _RS
            _write(self._slot(s), memoryview(self._cbuf)[p:p + _RS])
        if fn % R == 0 and fn > first:
            _write(self._slot(fn - 1), self._rbuf)

    def _finish_chunk(self, cs, merge=False):
        if merge:  # keep what a bulk write already put into this chunk file
            kb = self._kbuf
            n = _read_into(self._chunk(cs), kb)
            for i in range(max(n, 0) // _RS):
                p = i * _RS
                v = rec.check(kb, p)
                if v >= cs + R:  # the ring moved on: this chunk is sealed, never overwrite
                    rec.fill_holes(self._cbuf)
                    return
                if rec.check(self._cbuf, p) != cs + i and v == cs + i:
                    self._cbuf[p:p + _RS] = kb[p:p + _RS]
        _write(self._chunk(cs), self._cbuf)
        rec.fill_holes(self._cbuf)
        if (cs + R) % S == 0:
            self._seal(cs + R - S)

    def _seal(self, base):
        """Write (or complete) the segment of base..base+S-1 from the chunk ring. The group
        is merged a chunk at a time, twice: once to count it (its count names the file),
        once to write it (a whole segment in RAM would be 4 KB of heap for good)."""
        if base + S - 1 <= self._floor:
            return  # all released already
        old = self._seg_n(base)  # > 0: an earlier seal of this group was cut, or damaged
        had, n = self._merge(base, old)
        if n == 0 or (old and had == n == old):
            return
        if not old:  # make room first: the new segment must fit in the budget too
            self._enforce_capacity(self.max_segments - 1)
        name = self.dir + _seg_name(base, n)
        same = old == n  # the old file is read while the new one is written
        f = open(self.dir + _TMP if same else name, "wb")
        try:
            self._merge(base, old, f)
        finally:
            f.close()
        if same:
            os.rename(self.dir + _TMP, name)  # atomic on littlefs: the old or the new
        elif old:
            _remove(self.dir + _seg_name(base, old))
        if old:
            self._segn[self._segs.index(base)] = n
        else:
            i = len(self._segs)
            while i and self._segs[i - 1] > base:
                i -= 1
            self._segs.insert(i, base)
            self._segn.insert(i, n)
        self._bad = [b for b in self._bad if not base <= b < base + S]  # n leaves them out

    def _merge(self, base, old, out=None):
        """The group base..base+S-1 as in its old segment file (of `old` readings; 0: none),
        completed from the chunk ring, one chunk's worth at a time (written to `out` when
        given). Returns the valid records of the old file and of the merged group."""
        kb, ob = self._kbuf, self._obuf
        had = n = 0
        f = None
        if old:
            try:
                f = open(self.dir + _seg_name(base, old), "rb")
            except OSError:
                pass
        try:
            for k in range(C):
                cs = base + k * R
                rec.fill_holes(ob)
                if f is not None:
                    try:
                        f.readinto(ob)
                    except OSError:
                        pass  # the rest of a damaged file counts as holes
                m = _read_into(self._chunk(cs), kb)
                for j in range(R):
                    p = j * _RS
                    if rec.check(ob, p) == cs + j:
                        had += 1
                    elif p + _RS <= m and rec.check(kb, p) == cs + j and rec.check(ob, p) < 0:
                        ob[p:p + _RS] = kb[p:p + _RS]
                    if rec.check(ob, p) == cs + j:
                        n += 1
                if out is not None:
                    out.write(ob)
        finally:
            if f is not None:
                f.close()
        return had, n

    def _enforce_capacity(self, keep=None):
        keep = self.max_segments if keep is None else keep
        while self._segs and self._segs[0] + S - 1 <= self._floor:
            self._pop_segment()  # released (a cut came between ack and remove)
        while len(self._segs) > keep:
            base = self._segs[0]
            lost = 0
            if base + S - 1 > self._floor:
                lost = self._live(base, self._segn[0])
                self._floor = base + S - 1
            self.dropped += lost
            self._write_state()  # count first: a cut before the remove only hides it twice
            self._pop_segment()

    def _pop_segment(self):
        """Forget the oldest segment and remove its file."""
        base, n = self._segs.pop(0), self._segn.pop(0)
        _remove(self.dir + _seg_name(base, n))

    def _write_state(self):
        self._gen += 1
        _write(self.dir + ("a" if self._gen % 2 == 0 else "b"),
               _pack_state(self._gen, self._floor, self.dropped, self._reserve,
                           self._rtc_reserve))

    # -- reading --------------------------------------------------------------------------
    def _peek_segment(self, base, s, sink):
        try:
            f = open(self.dir + _seg_name(base, self._seg_n(base)), "rb")
        except OSError:
            self._note_bad(s, base + S)
            return
        try:
            f.seek((s - base) * _RS)
            while s < base + S and sink.room > 0:
                if f.readinto(self._rbuf) != _RS:
                    self._note_bad(s, base + S)
                    return
                self._take(self._rbuf, _RS, s, s, s + 1, sink, True)
                s += 1
        finally:
            f.close()

    def _seg_n(self, base):
        """Readings in the segment of base (0: there is none)."""
        for i in range(len(self._segs)):
            if self._segs[i] == base:
                return self._segn[i]
        return 0

    def _take(self, buf, nbytes, b0, s, end, sink, sealed=False):
        """Hand the valid records for seqs s..end-1 found in buf (buf holds seq b0 first) to
        the sink. Returns the next seq to look at. A sealed segment's name already excludes
        its holes from depth(), so there only corrupt records are noted."""
        while s < end and sink.room > 0:
            off = (s - b0) * _RS
            v = rec.check(buf, off) if off + _RS <= nbytes else -1
            if v == s:
                sink.add(buf, off)
            elif s > self._scan:
                if v == -2:
                    self.corrupt += 1
                if (v == -2 or not sealed) and s > self._floor and s not in self._bad:
                    self._bad.append(s)
            if s > self._scan:
                self._scan = s
            s += 1
        return s

    def _note_bad(self, s, end):
        for x in range(max(s, self._scan + 1), end):
            self._bad.append(x)
        if s > self._scan or end - 1 > self._scan:
            self.corrupt += 1
            self._scan = max(self._scan, end - 1)

    # -- boot recovery --------------------------------------------------------------------
    def _recover(self):
        self._load_state()
        self._load_segments()
        fn, least = self._load_slots()
        self._fn = fn
        if fn % R == 0 and fn - 1 > self._floor:
            self._repair_chunk(fn - R)
            if fn % S == 0:
                self._seal(fn - S)
        segs_end = self._segs[-1] + S if self._segs else 0
        intact = self._load_rtc(max(fn, segs_end))
        least = max(least, segs_end, self._floor + 1, self._reserve)
        if self._rtc_n and (self.next_seq < least or rec.check(self._rtc_img, 4) < least):
            self.flush()  # a flush was cut (or the RTC is behind flash): finish it now
        if not (self._rtc_n or intact):
            least = max(least, self._rtc_reserve)
        self._skip_to(least, False)
        self._enforce_capacity()
        if self._fn > max(fn, self._reserve):  # the jump is not on flash yet: make it so
            self._reserve = self._fn
            self._write_state()


    def _load_state(self):
        best = None
        b = bytearray(_STATE_SIZE + 1)
        for name in ("a", "b"):
            n = _read_into(self.dir + name, b)
            if n < 0:
                continue
            st = _unpack_state(b[:n])
            if st is None:
                self.corrupt += 1
            elif best is None or st[0] > best[0]:
                best = st
        if best is not None:
            self._gen, self._floor, self.dropped, self._reserve, self._rtc_reserve = best

    def _load_segments(self):
        segs = []
        try:
            names = os.listdir(self.dir[:-1])
        except OSError:  # "spool" is not a directory: count it, append will report errors
            self.corrupt += 1
            names = []
        for name in names:
            if name in ("a", "b", "r", "c"):
                continue
            if name == _TMP:  # a rewrite cut before its rename: the old file still stands
                _remove(self.dir + _TMP)
                continue
            seg = _parse_seg(name)
            if seg is None or seg[0] % S:
                self.corrupt += 1  # garbage in our folder: counted, left alone
                continue
            segs.append(seg)
        segs.sort()
        bases, counts = [], []
        for base, n in segs:  # two files for one base: an interrupted repair; keep the fuller
            if bases and bases[-1] == base:
                counts[-1] = max(counts[-1], n)
                continue
            bases.append(base)
            counts.append(n)
        self._segs, self._segn = bases, counts

    def _load_slots(self):
        """Read the slot ring into _kbuf and the current chunk into _cbuf. Returns the next
        seq the slots prove, and the least next seq allowing for unreadable slots."""
        kb = self._kbuf
        rec.fill_holes(kb)
        top = -1
        bad = []
        for i in range(R):
            n = _read_into(self._slot(i), memoryview(kb)[i * _RS:(i + 1) * _RS])
            v = rec.check(kb, i * _RS) if n == _RS else (-2 if n > 0 else -1)
            if v >= 0 and v % R != i:
                v = -2
            if v == -2:
                self.corrupt += 1
                bad.append(i)
                rec.fill_holes(kb, i * _RS, (i + 1) * _RS)
            elif v > top:
                top = v
        fn = max(1, top + 1)
        least = fn
        for i in bad:  # an unreadable slot may have held the newest seq: never reuse it
            x = fn + (i - fn) % R
            least = max(least, x + 1)
        cs = fn - fn % R
        rec.fill_holes(self._cbuf)
        for i in range(R):
            v = rec.check(kb, i * _RS)
            if cs <= v < fn:
                self._cbuf[i * _RS:(i + 1) * _RS] = kb[i * _RS:(i + 1) * _RS]
        return fn, least

    def _repair_chunk(self, cs):
        """After a cut between a slot write and its chunk write: redo the chunk from the
        slots (still in _kbuf), keeping whatever the chunk file already holds."""
        kb = self._kbuf
        have = 0
        for i in range(R):
            if rec.check(kb, i * _RS) == cs + i:
                have += 1
        if not have:
            return
        ck = bytearray(_CHUNK)
        n = _read_into(self._chunk(cs), ck)
        for i in range(max(n, 0) // _RS):
            if rec.check(ck, i * _RS) >= cs + R:
                return  # a later bulk write moved the ring on: this chunk is long sealed
        missing = False
        for i in range(R):
            p = i * _RS
            if rec.check(kb, p) == cs + i and (n < p + _RS or rec.check(ck, p) != cs + i):
                ck[p:p + _RS] = kb[p:p + _RS]
                missing = True
            elif n < p + _RS or rec.check(ck, p) != cs + i:
                rec.fill_holes(ck, p, p + _RS)
        if missing:
            _write(self._chunk(cs), ck)

    # -- RTC fast path --------------------------------------------------------------------
    def _load_rtc(self, on_flash):
        """Take back the readings held in RTC memory (those from seq on_flash on: the rest
        reached flash before a flush was cut). True if the RTC memory is intact."""
        if self._rtc is None:
            return False
        try:
            data = self._rtc.read()
        except OSError:
            data = b""
        img = self._rtc_img
        n = 0
        intact = (len(data) >= 4 and data[0] | (data[1] << 8) == _RTC_MAGIC
                  and len(data) == 4 + data[2] * _RS)
        if intact:
            want = min(data[2], self._rtc_batch)
            if len(img) < 4 + want * _RS:
                img = self._rtc_img = bytearray(4 + want * _RS)
            expect = self._fn
            for i in range(want):
                v = rec.check(data, 4 + i * _RS)
                if v < 0:
                    self.corrupt += 1
                    continue
                if v < expect or v < on_flash:
                    continue
                img[4 + n * _RS:4 + (n + 1) * _RS] = data[4 + i * _RS:4 + (i + 1) * _RS]
                expect = v + 1
                n += 1
        self._rtc_n = n
        if not self._rtc_fast and n:
            self.flush()  # the config no longer allows RTC holding: make it durable now
        elif not intact or n != data[2]:
            self._rtc_store()
        return intact

    def _rtc_append(self, reading):
        n = self._rtc_n
        s = self.next_seq
        if s >= self._rtc_reserve:  # reserve seqs on flash: a lost RTC never lets seq go back
            self._rtc_reserve = s + self._rtc_batch
            self._write_state()
        rec.pack_into(self._rtc_img, 4 + n * _RS, s, reading)
        self._rtc_n = n + 1
        self._rtc_store()
        if self._rtc_n >= self._rtc_batch:
            self.flush()
        return s

    def _rtc_store(self):
        img = self._rtc_img
        img[0] = _RTC_MAGIC & 0xFF
        img[1] = _RTC_MAGIC >> 8
        img[2] = self._rtc_n
        img[3] = 0
        self._rtc.write(memoryview(img)[:4 + self._rtc_n * _RS])
