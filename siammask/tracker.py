"""The tracker, engine- and variant-agnostic: init and step for many targets at once.

Per-target state is a small frozen dataclass passed in and returned; the Tracker object itself
only holds what never changes (engine, hyper-parameters, the variant's grid and window). What
differs between variants (stride, score-map size, anchors or points) is data (siammask.variants).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .backend import Engine, TrackHeads
from .config import TrackerConfig
from .geometry.anchors import generate_anchors, generate_points
from .geometry.crop import crop_and_resize, search_scale, template_side, to_chw_float
from .geometry.masks import (Pasted, box_corners, guided_filter_available, guided_refine, mask_polygon,
                             mask_window, paste_back, paste_matrix)
from .geometry.scoring import cosine_window, decode, decode_points, fg_scores, pick_best, size_penalty, top_peaks
from .evaluation.regions import box_iou
from .geometry.tiles import grid_reach, scan_batch, scan_centres
from .presence import PresenceModel, contrast, load_presence
from .validate import box_in_frame
from .variants import Geometry, variant_spec

log = logging.getLogger(__name__)

LOOK_ALIKES = 4   # look-alikes remembered per target
# Where a target's surroundings are measured: its own centre, then eight places one target size away.
RING = ((0, 0),) + tuple((dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dx, dy) != (0, 0))


@dataclass(frozen=True)
class FirstFrame:
    """The frame a target started on and how it stood there: its look-alikes are searched for on
    it, but only once they are needed, when the target is first lost (a target that is never lost
    never pays for the search, and the first result comes without it)."""

    frame: np.ndarray   # HxWx3 copy of the init frame (shared by the targets of one init call; serve
                        # starts each target with its own call, so each keeps its own copy)
    pos: np.ndarray     # (2,) the target's centre there
    size: np.ndarray    # (2,) its width, height there
    background: float   # its surroundings' similarity to it there


@dataclass(frozen=True)
class Memory:
    """What a target keeps to tell whether it is in view (siammask.presence) and to find it again."""

    first: np.ndarray           # (d,) unit embedding of the target on its first frame
    recent: np.ndarray          # (d,) running mean of embeddings on verified frames; the found look on re-acquisition
    background: float           # similarity of the target's surroundings to it: on the first frame,
                                # then again on verified frames of doubt (Tracker.infer_batch)
    presence: float             # smoothed presence, what `lost` is decided on
    look_alikes: np.ndarray     # (k,d) embeddings of places of the first frame that resemble the target
    lost_frames: int = 0        # frames since it was lost (0: tracking)
    candidate: np.ndarray | None = None  # (4,) cx, cy, w, h of a re-detection awaiting confirmation
    confirmations: int = 0      # frames in a row the candidate has passed found_threshold
    unverified: int = 0         # tracked frames since presence was last measured (verify_every)
    first_frame: FirstFrame | None = None  # what look_alikes are searched for on, until they are
                                           # (the target's first loss: Tracker.with_look_alikes)


@dataclass(frozen=True)
class TargetState:
    """Everything that carries one target from frame to frame. While lost, pos and size stay at
    the last box where the target was seen."""

    pos: np.ndarray        # (2,) float64 centre x, y in frame pixels
    size: np.ndarray       # (2,) float64 width, height
    avg_color: np.ndarray  # (3,) float64 BGR mean of the init frame: padding colour for every crop
    features: Any          # the engine's template features for this target (batch of one)
    memory: Memory

    @property
    def lost(self) -> bool:
        return self.memory.lost_frames > 0


@dataclass(frozen=True)
class TrackResult:
    """What one step reports for one target. While lost: box and polygon are the last box where the
    target was seen, mask is None, score and presence are the best re-detection candidate's."""

    box: tuple[float, float, float, float]  # x, y, w, h = [cx - w/2, cy - h/2, w, h] of the state
    polygon: np.ndarray                     # (4,2) rotated box corners
    score: float                            # unpenalised foreground score of the chosen anchor
    presence: float                         # 0-1: how likely the target is visible in this frame
    lost: bool                              # the tracker believes the target is not visible
    mask: np.ndarray | None                 # HxW bool, pasted-back probability > seg_thr (None on frame 0)
    pos_yx: tuple[int, int]                 # grid position the mask came from
    found: bool = False                     # re-acquired on this frame after being lost


def state_box(state: TargetState) -> tuple[float, float, float, float]:
    """[cx - w/2, cy - h/2, w, h] as floats."""
    (cx, cy), (w, h) = state.pos, state.size
    return (float(cx - w / 2), float(cy - h / 2), float(w), float(h))


@dataclass(frozen=True)
class Window:
    """One search crop: which job it serves, where it is cut and at what scale."""

    job: int
    centre: np.ndarray  # (2,) frame pixels
    side: float         # crop side in frame pixels
    scale: float        # crop pixels per frame pixel


@dataclass(frozen=True)
class SearchBatch:
    """Stage 1 output: the search crops of every (frame, target) job; one for a tracked target,
    several for a lost one (re-detection windows)."""

    crops: np.ndarray          # (N,3,S,S) float32 search crops
    windows: list[Window]
    frames: list[np.ndarray]   # each job's frame (verification crops are cut from it)


@dataclass(frozen=True)
class Pick:
    """Stage 2 output for one job: the chosen box, its mask and presence."""

    window: Window             # the crop the box and mask come from
    moved: TargetState         # tracked: the state moved towards the box (unclamped); lost: unchanged
    box: np.ndarray            # (4,) cx, cy, w, h in frame pixels of the chosen (or candidate) box
    pos_yx: tuple[int, int]    # its grid position
    score: float
    presence: float            # this frame's presence at the box, not smoothed (not measured: the smoothed one)
    embedding: np.ndarray | None  # (d,) unit embedding at the box; None: presence not measured this frame
    prob: np.ndarray           # (S,S) mask probabilities at pos_yx
    memory: Memory             # the job's memory as presence was measured (a re-measured background)


def start_result(state: TargetState) -> TrackResult:
    """What a target reports on the frame it starts on: its box, score 1, no mask."""
    return TrackResult(state_box(state), box_corners(*state.pos, *state.size), 1.0, 1.0, False, None, (-1, -1))


class Tracker:
    """Crops, runs the engine on a batch of targets, decodes, penalises, pastes masks back, and
    tells whether each target is in view (long-term: lost targets are searched for frame-wide).

    step() is the three stages search_batch -> infer_batch -> finish for one frame; the streaming
    pipeline runs the same three stages on targets of many frames at once. Grid positions are
    (y, x) cells of the variant's score map; `grid` holds its anchors or points."""

    def __init__(self, engine: Engine, config: TrackerConfig, presence: PresenceModel | None = None) -> None:
        self.engine = engine
        self.cfg = config
        spec = variant_spec(engine.variant)
        self.geometry: Geometry = spec.geometry
        self.presence = presence or load_presence(spec.presence)
        geo = self.geometry
        self.score_size = geo.score_size(config.exemplar_size, config.instance_size)
        if geo.anchor_free:
            self.grid = generate_points(geo.stride, self.score_size)
        else:
            self.grid = generate_anchors(geo.stride, geo.ratios, geo.scales, self.score_size)
        self._decode = decode_points if geo.anchor_free else decode
        self.window = cosine_window(self.score_size, geo.num_anchors)
        self.guide = config.mask_guide_radius > 0 and guided_filter_available()
        if config.mask_guide_radius > 0 and not self.guide:
            log.warning("this OpenCV has no contrib modules (cv2.ximgproc): masks are not refined along image "
                        "edges (coarser outlines); install opencv-contrib-python-headless (see the README)")

    def warm_up(self) -> None:
        """Two targets tracked one frame on a plain grey picture: every graph the engine opens on first
        use (the batched search among them) is opened and has run once, so a live stream pays for
        that before its first frame, not on its first lost target (a stall of ~0.5 s measured)."""
        side = 2 * self.cfg.instance_size
        frame = np.full((side, side, 3), 127, np.uint8)
        box = (side / 4, side / 4, self.cfg.exemplar_size / 2, self.cfg.exemplar_size / 2)
        self.step(frame, self.init(frame, [box, (box[0] * 2, *box[1:])]))

    def init(self, frame: np.ndarray, boxes: Sequence[Sequence[float]]) -> list[TargetState]:
        """Start one target per box (x, y, w, h) on `frame`: template features, and the target's
        and its surroundings' embeddings (the reference presence is measured against), in one batch.
        With re-detection, a copy of the frame is kept for the look-alikes (with_look_alikes)."""
        h, w = frame.shape[:2]
        avg = frame.mean(axis=(0, 1))
        starts = []
        for box in boxes:
            x, y, bw, bh = box_in_frame(box, (w, h))
            starts.append((np.array([x + bw / 2, y + bh / 2]), np.array([bw, bh])))
        crops = []
        for pos, size in starts:
            crops += [self._template_crop(frame, centre, size, avg) for centre in surroundings(pos, size)]
        feats = self.engine.template(to_chw_float(crops))
        embeddings = self._embed(feats)
        ring = len(RING)
        kept = frame.copy() if self.cfg.redetect else None  # the caller may reuse or draw on its frame
        states = []
        for i, (pos, size) in enumerate(starts):
            own, others = embeddings[i * ring], embeddings[i * ring + 1:(i + 1) * ring]
            first = background(own, own, others)
            pending = None if kept is None else FirstFrame(kept, pos, size, first)
            memory = Memory(own, own, first, 1.0, own[:0], first_frame=pending)
            states.append(TargetState(pos, size, avg, feats[i * ring:i * ring + 1], memory))
        return states

    def with_look_alikes(self, state: TargetState) -> TargetState:
        """Remember what on the first frame resembles the target (another car of the same colour,
        another player of the same team): the first re-detection windows (the nearest to the target)
        searched as for a lost target; places clear of the target's box that pass found_threshold
        themselves (LOOK_ALIKES at most). A re-detection that looks more like one of them than like
        the target is not taken for it. Searched when the target is first lost, on the first frame
        and the target as it stood there (Memory.first_frame): what init would have found, without
        its cost before the first result or for a target that is never lost (the batched search
        graph's session and working memory: on Crossing init 0.16 -> 0.02 s and peak RSS 172 ->
        115 MB, benchmarks/RESULTS.md). A caller may search them at once (serve, as a target starts:
        its streams wait then rather than on a live target's first loss, and the frame's copy is
        let go); the results are the same."""
        pending, memory = state.memory.first_frame, state.memory
        if pending is None:
            return state
        done = replace(state, memory=replace(memory, first_frame=None))
        started = Memory(memory.first, memory.first, pending.background, 1.0, memory.look_alikes)
        searching = TargetState(pending.pos, pending.size, state.avg_color, state.features,
                                replace(started, lost_frames=1))
        batch = self.search_batch([(pending.frame, searching)])
        heads = self.engine.track(batch.crops, self.engine.concat([state.features] * len(batch.windows)))
        own = _xywh([*pending.pos, *pending.size])
        found = [box for i, w in enumerate(batch.windows)
                 for box, _, _ in self._candidates(heads.cls[i], heads.loc[i], searching, w)
                 if box_iou(_xywh(box), own)[0] < 0.1]
        if not found:
            return done
        crops = [self._template_crop(pending.frame, box[:2], box[2:], state.avg_color) for box in found]
        embeddings = self._embed(self.engine.template(to_chw_float(crops)))
        alike = sorted(embeddings, key=lambda e: -float(e @ memory.first))[:LOOK_ALIKES]
        alike = [e for e in alike if self._presence(started, e) >= self.cfg.found_threshold]
        if not alike:
            return done
        alike = np.array(alike).reshape(-1, memory.first.shape[0])
        return replace(done, memory=replace(done.memory, look_alikes=alike))

    def step(self, frame: np.ndarray, states: Sequence[TargetState]) -> tuple[list[TargetState], list[TrackResult]]:
        """Track every target one frame; returns the new states and one result per target."""
        if not states:
            return [], []
        batch = self.search_batch([(frame, s) for s in states])
        picks = self.infer_batch(batch, states)
        out = [self.finish(frame, s, p) for s, p in zip(states, picks)]
        return [o[0] for o in out], [o[1] for o in out]

    def search_batch(self, jobs: Sequence[tuple[np.ndarray, TargetState]]) -> SearchBatch:
        """Stage 1: cut every job's search crops from its own frame, as one batch: the window round
        a tracked target, or the next re-detection windows of a lost one."""
        cfg = self.cfg
        windows = []
        for job, (frame, s) in enumerate(jobs):
            side, scale = search_scale(s.size, cfg.exemplar_size, cfg.instance_size, cfg.context_amount)
            side = float(round(side))
            windows += [Window(job, centre, side, scale) for centre in self._centres(frame, s, side)]
        crops = [crop_and_resize(jobs[w.job][0], w.centre, w.side, cfg.instance_size, jobs[w.job][1].avg_color)
                 for w in windows]
        return SearchBatch(to_chw_float(crops), windows, [frame for frame, _ in jobs])

    def _centres(self, frame: np.ndarray, state: TargetState, side: float) -> list[np.ndarray]:
        """Where to cut a job's crops: round the target, or (lost) the candidate being confirmed, the
        place where it was last seen (a target hidden where it stands comes back there: looked at on
        every lost frame, not once per sweep of a large frame) and the next windows of the
        nearest-first scan of the whole frame."""
        if not self._searching(state):
            return [state.pos]
        reach = grid_reach(side, self.score_size, self.geometry.stride, self.cfg.instance_size)
        frame_wh = (frame.shape[1], frame.shape[0])
        scan = scan_batch(scan_centres(frame_wh, state.pos, reach), state.memory.lost_frames, self.cfg.redetect_tiles)
        candidate = state.memory.candidate
        return ([] if candidate is None else [candidate[:2]]) + [state.pos] + list(scan)

    def infer_batch(self, batch: SearchBatch, states: Sequence[TargetState]) -> list[Pick]:
        """Engine heads for every crop against its target's template, each job's best box, its
        presence (one template batch for every job's verification crops), then its mask. The only
        stage that touches the engine; jobs may come from different frames (streams)."""
        owners = [w.job for w in batch.windows]
        heads = self.engine.track(batch.crops, self.engine.concat([states[j].features for j in owners]))
        # (window, box, grid cell, score) of every place worth a look; a lost target's windows all
        # score near 1 on clutter, so only presence can tell which of them (if any) holds the target.
        found = [(i, *c) for i, w in enumerate(batch.windows)
                 for c in self._candidates(heads.cls[i], heads.loc[i], states[w.job], w)]
        jobs = [batch.windows[f[0]].job for f in found]
        memories = [states[job].memory for job in jobs]
        measured = [k for k, job in enumerate(jobs) if not self._trusted(states[job], found[k][3])]
        verify = [self._template_crop(batch.frames[jobs[k]], found[k][1][:2], found[k][1][2:], states[jobs[k]].avg_color)
                  for k in measured]
        embeddings: list[np.ndarray | None] = [None] * len(found)
        presence = [m.presence for m in memories]
        if measured:
            for k, e in zip(measured, self._embed(self.engine.template(to_chw_float(verify)))):
                embeddings[k], presence[k] = e, self._presence(memories[k], e, self._searching(states[jobs[k]]))
        # A tracked target in doubt: are its surroundings now more like it (it grew, turned, the
        # camera moved), or is it gone? Long-term tracking measures its background again round the
        # box; if the target stands out from that enough to pass found_threshold, the frame passes
        # and the new background is kept. Otherwise the doubt stands: the old presence holds (a
        # cut to another scene has new surroundings too, no more like the target than the box).
        # A lost target's best place near where it was last seen is given the same second look
        # (it often comes back there, seen anew); places farther away must pass as they are.
        again = [k for k in measured if self.cfg.redetect and not states[jobs[k]].lost
                 and presence[k] < self.cfg.found_threshold]
        for job in (j for j, state in enumerate(states) if self._searching(state)):
            near = [k for k in range(len(found)) if jobs[k] == job
                    and np.all(np.abs(found[k][1][:2] - states[job].pos) <= batch.windows[found[k][0]].side / 2)]
            best = max(near, key=lambda k: presence[k], default=None)
            if best is not None and presence[best] < self.cfg.found_threshold:
                again.append(best)
        if again:
            ring = [self._template_crop(batch.frames[jobs[k]], centre, found[k][1][2:], states[jobs[k]].avg_color)
                    for k in again for centre in surroundings(found[k][1][:2], found[k][1][2:])[1:]]
            rings = self._embed(self.engine.template(to_chw_float(ring))).reshape(len(again), len(RING) - 1, -1)
            for k, others in zip(again, rings):
                memory = replace(memories[k], background=background(memories[k].first, memories[k].recent, others))
                second = self._presence(memory, embeddings[k], self._searching(states[jobs[k]]))
                if second >= self.cfg.found_threshold:
                    memories[k], presence[k] = memory, second
        chosen = [max((k for k in range(len(found)) if jobs[k] == job), key=lambda k: (presence[k], found[k][3]))
                  for job in range(len(states))]
        rows = [found[k][0] for k in chosen]
        probs = _sigmoid(self.engine.mask(_rows(heads, rows), np.array([found[k][2] for k in chosen], np.int64)))
        picks = []
        for job, (state, k) in enumerate(zip(states, chosen)):
            window, box, pos_yx, score = found[k]
            moved = state if self._searching(state) else replace(state, pos=box[:2], size=box[2:])
            picks.append(Pick(batch.windows[window], moved, box, pos_yx, score, presence[k], embeddings[k],
                              probs[job], memories[k]))
        return picks

    def _candidates(self, cls: np.ndarray, loc: np.ndarray, state: TargetState,
                    window: Window) -> list[tuple[np.ndarray, tuple[int, int], float]]:
        """The boxes of one crop worth a look, as (cx, cy, w, h) in frame pixels, grid cell and
        unpenalised score: for a tracked target its best anchor (or point) under the cosine window;
        in a re-detection window (no motion prior) the redetect_peaks strongest distinct places."""
        cfg = self.cfg
        score = fg_scores(cls)
        boxes = self._decode(loc, self.grid)
        penalty = size_penalty(boxes, state.size * window.scale, cfg.penalty_k)
        searching = self._searching(state)
        if searching:
            bests = top_peaks(penalty * score, self.geometry.num_anchors, self.score_size, cfg.redetect_peaks)
        else:
            bests = [pick_best(score, penalty, self.window, cfg.window_influence)]
        out = []
        for best in bests:
            pred = boxes[:, best] / window.scale
            _, y, x = np.unravel_index(best, (self.geometry.num_anchors, self.score_size, self.score_size))
            if not (np.isfinite(score[best]) and np.isfinite(pred).all() and np.isfinite(penalty[best])):
                continue
            # A tracked target's size follows the head slowly (lr); a re-detection takes the head's size.
            lr = 1.0 if searching else penalty[best] * score[best] * cfg.lr
            size = state.size * (1 - lr) + pred[2:] * lr
            box = np.array([pred[0] + window.centre[0], pred[1] + window.centre[1], *size], np.float64)
            out.append((box, (int(y), int(x)), float(score[best])))
        # no usable output: stay where the window is, score 0
        return out or [(np.array([*window.centre, *state.size]), (self.score_size // 2, self.score_size // 2), 0.0)]

    def _trusted(self, state: TargetState, score: float) -> bool:
        """A target tracked in clear view (smoothed presence at least verify_above) whose presence was
        measured less than verify_every frames ago: this frame keeps its smoothed presence instead of
        running the template network again (a seventh of a tracking frame's cost). A target whose
        look is changing is measured on every frame: its remembered look must keep up with it."""
        memory = state.memory
        return not state.lost and score > 0.0 and memory.presence >= self.cfg.verify_above \
            and memory.unverified + 1 < self.cfg.verify_every

    def _searching(self, state: TargetState) -> bool:
        """A lost target under re-detection (without it a lost target is tracked on locally)."""
        return state.lost and self.cfg.redetect

    def _template_crop(self, frame: np.ndarray, centre: np.ndarray, size: np.ndarray,
                       avg: np.ndarray) -> np.ndarray:
        return crop_and_resize(frame, centre, template_side(size, self.cfg.context_amount),
                               self.cfg.exemplar_size, avg)

    def _embed(self, features: Any) -> np.ndarray:
        return self.presence.embed(self.engine.appearance(features))

    def _presence(self, memory: Memory, embedding: np.ndarray, searching: bool = False) -> float:
        """This frame's presence of the target at the box whose embedding is given; while searching,
        0 where the place looks more like one of the first frame's look-alikes than like the target."""
        similarity = max(float(embedding @ memory.first), float(embedding @ memory.recent))
        if searching and len(memory.look_alikes) and float((memory.look_alikes @ embedding).max()) > similarity:
            return 0.0
        presence = float(self.presence.probability(contrast(similarity, memory.background)))
        return presence if np.isfinite(presence) else 0.0  # non-finite features (a broken export): not seen

    def finish(self, frame: np.ndarray, old: TargetState, pick: Pick) -> tuple[TargetState, TrackResult]:
        """Stage 3: decide lost or found, paste the mask back into the frame, find its polygon,
        clamp the state to the frame."""
        cfg = self.cfg
        frame_wh = (frame.shape[1], frame.shape[0])
        if self._searching(old):
            memory = self._search_memory(old.memory, pick)
            if memory.lost_frames:  # still lost: the last box where it was seen, no mask
                kept = replace(old, memory=memory)
                return kept, TrackResult(state_box(kept), box_corners(*kept.pos, *kept.size), pick.score,
                                         pick.presence, True, None, (-1, -1))
            moved = replace(old, pos=pick.box[:2].astype(np.float64), size=pick.box[2:].astype(np.float64),
                            memory=memory)
        else:
            memory = self._tracking_memory(old.memory, pick, frame_wh)
            moved = replace(pick.moved, memory=memory)
            if memory.lost_frames and cfg.redetect:  # lost on this frame: back to where it was last seen
                kept = self.with_look_alikes(replace(old, memory=memory))
                return kept, TrackResult(state_box(kept), box_corners(*kept.pos, *kept.size), pick.score,
                                         memory.presence, True, None, pick.pos_yx)
        pasted = self._paste(frame, pick)
        polygon = mask_polygon(pasted.values, cfg.seg_thr, origin=(pasted.x, pasted.y))
        if polygon is None:
            polygon = box_corners(*moved.pos, *moved.size)
        clamped = _clamp(moved, frame_wh)
        return clamped, TrackResult(state_box(clamped), polygon, pick.score, memory.presence, memory.lost_frames > 0,
                                    pasted.above(cfg.seg_thr, frame_wh), pick.pos_yx,
                                    found=old.lost and not memory.lost_frames)

    def _paste(self, frame: np.ndarray, pick: Pick) -> Pasted:
        """The pick's mask probabilities pasted back into the frame."""
        cfg, geo = self.cfg, self.geometry
        frame_wh = (frame.shape[1], frame.shape[0])
        crop_xy = (pick.window.centre[0] - pick.window.side / 2, pick.window.centre[1] - pick.window.side / 2)
        window = mask_window(crop_xy, pick.window.side, pick.pos_yx, cfg.instance_size, cfg.exemplar_size,
                             geo.stride, geo.base_size)
        pasted = paste_back(pick.prob, paste_matrix(window, pick.prob.shape[0], frame_wh), frame_wh)
        if self.guide:
            pasted = guided_refine(pasted, frame, window, pick.prob.shape[0], cfg.mask_guide_radius,
                                   cfg.mask_guide_eps)
        return pasted

    def _tracking_memory(self, memory: Memory, pick: Pick, frame_wh: tuple[int, int]) -> Memory:
        """Smoothed presence with hysteresis: lost below lost_threshold; without re-detection, in view
        again once the smoothed presence reaches found_threshold. Verified frames refresh `recent`,
        unless the box is cut by the frame's edge (a target leaving the view shows only a part of
        itself: remembering that part would let anything like it be taken for the target later).
        Presence measured after frames that were not (verify_every) stands for them too: smoothing
        moves as far as it would have over every frame since the last measurement. The remembered
        look moves one step: a look just seen as in doubt must not weigh several frames."""
        cfg = self.cfg
        if pick.embedding is None:
            return replace(memory, unverified=memory.unverified + 1)
        frames = memory.unverified + 1
        keep = cfg.presence_smooth ** frames
        presence = keep * memory.presence + (1 - keep) * pick.presence
        if pick.score == 0.0:  # no usable network output (_candidates): not seen, at once
            presence = 0.0
        if memory.lost_frames:  # only without re-detection: tracking goes on, `lost` is a flag
            lost = 0 if presence >= cfg.found_threshold else memory.lost_frames + 1
        else:
            lost = 1 if presence < cfg.lost_threshold else 0
        recent = memory.recent
        verified = not lost and pick.presence >= cfg.found_threshold
        if verified and cfg.memory_rate > 0 and _inside(pick.box, frame_wh):
            mixed = (1 - cfg.memory_rate) * recent + cfg.memory_rate * pick.embedding
            recent = mixed / max(float(np.linalg.norm(mixed)), 1e-12)
        return replace(memory, recent=recent, background=pick.memory.background, presence=float(presence),
                       lost_frames=lost, unverified=0)

    def _search_memory(self, memory: Memory, pick: Pick) -> Memory:
        """One re-detection frame: a candidate that passes found_threshold at the same place as the
        last one counts a confirmation; confirm_frames of them in a row end the search. The look just
        confirmed becomes the remembered recent one: a target back after a while has changed (it
        walked on, turned), and the look from before it went would let it slip below lost_threshold
        again while in view, with no verified frame to refresh it."""
        if pick.presence < self.cfg.found_threshold:
            return replace(memory, lost_frames=memory.lost_frames + 1, candidate=None, confirmations=0,
                           presence=pick.presence)
        previous = memory.candidate
        same = previous is not None and np.hypot(*(pick.box[:2] - previous[:2])) <= max(previous[2:])
        confirmations = memory.confirmations + 1 if same else 1
        if confirmations >= self.cfg.confirm_frames:
            return replace(memory, lost_frames=0, candidate=None, confirmations=0, presence=pick.presence,
                           background=pick.memory.background, recent=pick.embedding)
        return replace(memory, lost_frames=memory.lost_frames + 1, candidate=pick.box.copy(),
                       confirmations=confirmations, presence=pick.presence)


def _inside(box: np.ndarray, frame_wh: tuple[int, int]) -> bool:
    """Whether a (cx, cy, w, h) box lies wholly inside the frame."""
    cx, cy, w, h = box
    return bool(cx - w / 2 >= 0 and cy - h / 2 >= 0 and cx + w / 2 <= frame_wh[0] and cy + h / 2 <= frame_wh[1])


def _xywh(box: Sequence[float]) -> np.ndarray:
    """(1, 4) x, y, w, h of a cx, cy, w, h box."""
    cx, cy, w, h = box
    return np.array([[cx - w / 2, cy - h / 2, w, h]])


def background(first: np.ndarray, recent: np.ndarray, ring: np.ndarray) -> float:
    """How much the (k,d) embeddings of a target's surroundings resemble it, compared as its own
    box is (the higher of first and recent), kept below 0.95 so that contrast stays defined."""
    similarity = np.maximum(ring @ first, ring @ recent)
    return float(np.clip(similarity.mean(), 0.0, 0.95))


def surroundings(pos: np.ndarray, size: np.ndarray) -> list[np.ndarray]:
    """The centres of RING round a target (the background that presence is normalised against)."""
    return [pos + np.array(o) * size for o in RING]


def _rows(heads: TrackHeads, rows: list[int]) -> TrackHeads:
    """The heads of the chosen crops only (the mask stage runs on one crop per job)."""
    if rows == list(range(len(heads.cls))):
        return heads
    return heads.select(rows)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def _clamp(state: TargetState, frame_wh: tuple[int, int]) -> TargetState:
    """Keep the centre inside the frame and the size within [10, frame size]."""
    w, h = frame_wh
    pos = np.array([max(0, min(w, state.pos[0])), max(0, min(h, state.pos[1]))], np.float64)
    size = np.array([max(10, min(w, state.size[0])), max(10, min(h, state.size[1]))], np.float64)
    return replace(state, pos=pos, size=size)
