/* The frame loop of model/ctc.py's BeamSearch.advance, compiled: the same search, the same numbers.
 *
 * Python keeps everything the search knows about a prefix (the _Prefix tree, its children caches, the
 * external scores: LM, word bonus, hotwords, constraint); this file only runs the per-frame arithmetic
 * that made the pure-Python loop the costliest part of serving: extending each live prefix by each
 * candidate symbol, merging paths, bounding hopeless extensions and cutting to the beam. A new prefix is
 * made by calling BeamSearch._child, as the Python loop does, so both give the same tree. Every double
 * is computed as the Python code computes it (C's exp/log1p are what Python's math module calls), and
 * ties are broken in the same order, so results are equal to the bit; tests/test_ctc.py holds them to it.
 *
 * No NumPy C API: the arrays come in through the buffer protocol, so the module builds against Python's
 * headers alone. Built as an optional extension (setup.py): without a compiler, ctc.py runs its Python loop.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SYMBOLS 512 /* the vocabulary's bound (ours: 29 symbols); exported as MAX_SYMBOLS */

static PyObject *s_last, *s_score, *s_children, *s_blank, *s_non_blank, *s_emissions, *s_best_in, *s_child;

typedef struct {
    PyObject *prefix;    /* strong */
    PyObject *emissions; /* strong: the (Emission, older) linked list, or None */
    double blank, non_blank, best_in;
    double prefix_score; /* prefix.score, read once */
    long last;           /* prefix.last */
    PyObject *children;  /* borrowed from prefix (kept alive by it) */
} Entry;

typedef struct {
    double bound, score;
    long sym;
    Py_ssize_t from; /* index into the frame's current entries */
    Py_ssize_t order;
} Extension;

static double logaddexp(double a, double b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    if (a < b) { double t = a; a = b; b = t; }
    return a + log1p(exp(b - a));
}

static double total_of(const Entry *e) { return logaddexp(e->blank, e->non_blank); }

static void clear_entries(Entry *es, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_XDECREF(es[i].prefix);
        Py_XDECREF(es[i].emissions);
    }
}

/* min-heap of doubles: only its smallest value is ever read */
static void heap_sift_down(double *h, Py_ssize_t n, Py_ssize_t i) {
    for (;;) {
        Py_ssize_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l] < h[m]) m = l;
        if (r < n && h[r] < h[m]) m = r;
        if (m == i) return;
        double t = h[i]; h[i] = h[m]; h[m] = t;
        i = m;
    }
}

static int cmp_double_desc(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

/* Python's sort(key=bound, reverse=True) is stable: equal bounds keep their order. */
static int cmp_extension(const void *a, const void *b) {
    const Extension *x = a, *y = b;
    if (x->bound > y->bound) return -1;
    if (x->bound < y->bound) return 1;
    return (x->order > y->order) - (x->order < y->order);
}

typedef struct { double key; Py_ssize_t index; } Ranked;

/* heapq.nlargest(n, items, key) == sorted(items, key, reverse=True)[:n]: ties keep their order. */
static int cmp_ranked(const void *a, const void *b) {
    const Ranked *x = a, *y = b;
    if (x->key > y->key) return -1;
    if (x->key < y->key) return 1;
    return (x->index > y->index) - (x->index < y->index);
}

static Py_ssize_t find(const Entry *es, Py_ssize_t n, PyObject *prefix) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (es[i].prefix == prefix) return i;
    return -1;
}

static int get_double(PyObject *obj, PyObject *name, double *out) {
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL) return -1;
    *out = PyFloat_AsDouble(v);
    Py_DECREF(v);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* Fill an entry's prefix-derived fields (last, score, children). Takes a new reference to prefix. */
static int load_prefix(Entry *e, PyObject *prefix) {
    Py_INCREF(prefix);
    e->prefix = prefix;
    PyObject *last = PyObject_GetAttr(prefix, s_last);
    if (last == NULL) return -1;
    e->last = PyLong_AsLong(last);
    Py_DECREF(last);
    if (e->last == -1 && PyErr_Occurred()) return -1;
    if (get_double(prefix, s_score, &e->prefix_score) < 0) return -1;
    PyObject *children = PyObject_GetAttr(prefix, s_children);
    if (children == NULL) return -1;
    if (!PyDict_Check(children)) {
        Py_DECREF(children);
        PyErr_SetString(PyExc_TypeError, "prefix.children must be a dict");
        return -1;
    }
    e->children = children; /* the prefix holds it */
    Py_DECREF(children);
    return 0;
}

/* one node of a beam's emission list: (symbol, frame, prob, older), as ctc.py's loop makes it */
static PyObject *new_emission(long sym, long frame, double prob, PyObject *older) {
    return Py_BuildValue("(lldO)", sym, frame, prob, older);
}

/* (re)allocate *p to n items; on failure *p is left as it was (freed at the end) */
static int grow(void **p, Py_ssize_t n, size_t size) {
    void *grown = PyMem_Realloc(*p, (size_t)n * size);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *p = grown;
    return 0;
}

typedef struct { Py_buffer view; int held; } Buf;

/* kind 'f': float32; 'i': int64 (format 'l' or 'q', whichever the platform names it) */
static int get_buf(PyObject *obj, Buf *b, char kind, int ndim, const char *what) {
    if (PyObject_GetBuffer(obj, &b->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_ND) < 0) return -1;
    b->held = 1;
    const char *fmt = b->view.format ? b->view.format : "B";
    if (*fmt == '<' || *fmt == '=' || *fmt == '@') fmt++;
    int ok = kind == 'f' ? (strcmp(fmt, "f") == 0 && b->view.itemsize == 4)
                         : ((strcmp(fmt, "l") == 0 || strcmp(fmt, "q") == 0) && b->view.itemsize == 8);
    if (b->view.ndim != ndim || !ok) {
        PyErr_Format(PyExc_TypeError, "%s: expected a C-contiguous %d-D %s array", what, ndim,
                     kind == 'f' ? "float32" : "int64");
        return -1;
    }
    return 0;
}

static void release(Buf *b) {
    if (b->held) PyBuffer_Release(&b->view);
    b->held = 0;
}

/* A prefix made in a frame that did not survive its cut, kept in its parent's children for a few frames
 * (the same extension is often made again in the next one) and then forgotten. */
typedef struct {
    PyObject *parent_children; /* borrowed: the parent survived a cut, so the tree holds it */
    PyObject *child;           /* borrowed: the parent's children dict holds it */
    long sym;
    long age;                  /* frames it has been kept */
} Unused;

/* Is prefix among the entries that survive the frame (all of nxt, or its kept part after a cut)? */
static int survives(const Entry *nxt, Py_ssize_t n_nxt, const Ranked *ranked, Py_ssize_t n_keep, int cut,
                    PyObject *prefix) {
    if (!cut) return find(nxt, n_nxt, prefix) >= 0;
    for (Py_ssize_t i = 0; i < n_keep; i++)
        if (nxt[ranked[i].index].prefix == prefix) return 1;
    return 0;
}

/* advance(search, beams, log_probs, top_sym, top_lp, floors, t0, space, beam_size, max_gain, beam_type,
 *         keep_frames) -> the new beams dict. Frames are numbered from t0. */
static PyObject *advance(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *search, *beams, *lp_obj, *sym_obj, *tlp_obj, *floor_obj, *beam_type;
    long t0, space;
    Py_ssize_t beam_size, keep_frames;
    double max_gain;
    if (!PyArg_ParseTuple(args, "OO!OOOOllndOn", &search, &PyDict_Type, &beams, &lp_obj, &sym_obj, &tlp_obj,
                          &floor_obj, &t0, &space, &beam_size, &max_gain, &beam_type, &keep_frames))
        return NULL;
    Buf lpb = {0}, symb = {0}, tlpb = {0}, flb = {0};
    Entry *cur = NULL, *nxt = NULL;
    Extension *ext = NULL;
    Ranked *ranked = NULL;
    double *heap = NULL;
    /* the prefixes made in the last keep_frames frames that are in no beam */
    Unused *unused = NULL;
    PyObject *result = NULL;
    Py_ssize_t n_cur = 0, n_nxt = 0, cap = 0, n_unused = 0, unused_cap = 0;
    PyObject *sym_keys[MAX_SYMBOLS] = {0};

    if (get_buf(lp_obj, &lpb, 'f', 2, "log_probs") < 0 || get_buf(sym_obj, &symb, 'i', 2, "top_sym") < 0 ||
        get_buf(tlp_obj, &tlpb, 'f', 2, "top_lp") < 0 || get_buf(floor_obj, &flb, 'f', 1, "floors") < 0)
        goto done;
    Py_ssize_t T = lpb.view.shape[0], V = lpb.view.shape[1], K = symb.view.shape[1];
    if (symb.view.shape[0] != T || tlpb.view.shape[0] != T || tlpb.view.shape[1] != K || flb.view.shape[0] != T) {
        PyErr_SetString(PyExc_ValueError, "advance: array shapes disagree");
        goto done;
    }
    if (V > MAX_SYMBOLS) {
        PyErr_Format(PyExc_ValueError, "advance: at most %d symbols", MAX_SYMBOLS);
        goto done;
    }
    const float *LP = lpb.view.buf, *TLP = tlpb.view.buf, *FL = flb.view.buf;
    const long long *SYM = symb.view.buf;
    for (Py_ssize_t s = 0; s < V; s++)
        if ((sym_keys[s] = PyLong_FromSsize_t(s)) == NULL) goto done;

    /* the beams as they come in */
    n_cur = PyDict_GET_SIZE(beams);
    cap = n_cur > beam_size ? n_cur : beam_size;
    cur = PyMem_Calloc(cap ? cap : 1, sizeof(Entry));
    if (cur == NULL) { PyErr_NoMemory(); goto done; }
    {
        Py_ssize_t pos = 0, i = 0;
        PyObject *key, *value;
        while (PyDict_Next(beams, &pos, &key, &value)) {
            Entry *e = &cur[i++];
            if (load_prefix(e, key) < 0) { n_cur = i; goto done; }
            if (get_double(value, s_blank, &e->blank) < 0 || get_double(value, s_non_blank, &e->non_blank) < 0 ||
                get_double(value, s_best_in, &e->best_in) < 0) { n_cur = i; goto done; }
            if ((e->emissions = PyObject_GetAttr(value, s_emissions)) == NULL) { n_cur = i; goto done; }
        }
    }
    int bounded_ok = max_gain != INFINITY;

    for (Py_ssize_t f = 0; f < T; f++) {
        const float *lp = LP + f * V;
        const long long *syms = SYM + f * K;
        const float *lps = TLP + f * K;
        double floor = (double)FL[f], lp_blank = (double)lp[0];
        long t = t0 + (long)f;
        long cand[MAX_SYMBOLS];
        Py_ssize_t n_cand = 0;
        for (Py_ssize_t j = 0; j < K; j++)
            if ((double)lps[j] >= floor) cand[n_cand++] = (long)syms[j];

        Py_ssize_t need = n_cur * (n_cand + 1) + 1;
        if (need > cap || nxt == NULL) {
            Py_ssize_t ncap = need > cap ? need : cap;
            if (grow((void **)&nxt, ncap, sizeof *nxt) < 0 || grow((void **)&cur, ncap, sizeof *cur) < 0 ||
                grow((void **)&ext, ncap, sizeof *ext) < 0 || grow((void **)&ranked, ncap, sizeof *ranked) < 0 ||
                grow((void **)&heap, beam_size + 1, sizeof *heap) < 0)
                goto done;
            cap = ncap;
        }
        if (n_unused + need > unused_cap) {
            Py_ssize_t ncap = 2 * (n_unused + need);
            if (grow((void **)&unused, ncap, sizeof *unused) < 0) goto done;
            unused_cap = ncap;
        }
        n_nxt = 0;
        double totals[n_cur ? n_cur : 1];
        /* stay on the same prefix through a blank, or by repeating the last symbol */
        for (Py_ssize_t i = 0; i < n_cur; i++) {
            Entry *b = &cur[i], *e = &nxt[n_nxt++];
            double total = total_of(b);
            totals[i] = total;
            *e = *b;
            Py_INCREF(e->prefix);
            Py_INCREF(e->emissions);
            if (b->last) {
                double repeat = b->non_blank + (double)lp[b->last], stay = total + lp_blank;
                e->blank = stay;
                e->non_blank = repeat;
                e->best_in = repeat > stay ? repeat : stay; /* Python's max(stay, repeat) */
            } else {
                e->blank = total + lp_blank;
                e->non_blank = -INFINITY;
                e->best_in = total + lp_blank;
            }
        }
        int bounded = bounded_ok && n_nxt >= beam_size;
        Py_ssize_t heap_n = 0;
        double bar = 0.0;
        if (bounded) {
            double *scores = PyMem_Malloc(n_nxt * sizeof(double));
            if (scores == NULL) { PyErr_NoMemory(); goto done; }
            for (Py_ssize_t i = 0; i < n_nxt; i++) scores[i] = total_of(&nxt[i]) + nxt[i].prefix_score;
            qsort(scores, n_nxt, sizeof(double), cmp_double_desc);
            heap_n = beam_size;
            for (Py_ssize_t i = 0; i < heap_n; i++) heap[i] = scores[heap_n - 1 - i]; /* ascending */
            PyMem_Free(scores);
            bar = heap[0];
        }
        Py_ssize_t n_ext = 0;
        for (Py_ssize_t i = 0; i < n_cur; i++) {
            Entry *b = &cur[i];
            double total = totals[i];
            for (Py_ssize_t j = 0; j < n_cand; j++) {
                long s = cand[j];
                if (s == space && (!b->last || b->last == space)) continue;
                double score = (s == b->last ? b->blank : total) + (double)lp[s];
                if (bounded && score + b->prefix_score + (s == space ? max_gain : 0.0) < bar) {
                    PyObject *child = PyDict_GetItemWithError(b->children, sym_keys[s]);
                    if (child == NULL && PyErr_Occurred()) goto done;
                    if (child == NULL || find(nxt, n_nxt, child) < 0) continue;
                }
                Extension *x = &ext[n_ext];
                x->bound = score + b->prefix_score;
                x->score = score;
                x->sym = s;
                x->from = i;
                x->order = n_ext++;
            }
        }
        if (bounded) qsort(ext, n_ext, sizeof(Extension), cmp_extension);
        for (Py_ssize_t xi = 0; xi < n_ext; xi++) {
            Extension *x = &ext[xi];
            Entry *b = &cur[x->from];
            long s = x->sym;
            PyObject *c = PyDict_GetItemWithError(b->children, sym_keys[s]); /* borrowed */
            if (c == NULL && PyErr_Occurred()) goto done;
            if (c == Py_None) continue; /* not allowed (constraint) */
            Py_ssize_t at = c == NULL ? -1 : find(nxt, n_nxt, c);
            if (at < 0) { /* a prefix new to this frame */
                if (bounded && x->bound + (s == space ? max_gain : 0.0) < heap[0]) continue;
                PyObject *made = NULL; /* owned until the entry holds it */
                if (c == NULL) { /* not made yet */
                    made = PyObject_CallMethodObjArgs(search, s_child, b->prefix, sym_keys[s], NULL);
                    if (made == NULL) goto done;
                    if (made == Py_None) { Py_DECREF(made); continue; }
                    unused[n_unused++] = (Unused){b->children, made, s, 0}; /* until it survives a cut */
                    c = made;
                }
                Entry *e = &nxt[n_nxt];
                memset(e, 0, sizeof(Entry));
                int loaded = load_prefix(e, c);
                Py_XDECREF(made);
                if (loaded < 0) { Py_CLEAR(e->prefix); goto done; }
                e->emissions = new_emission(s, t, exp((double)lp[s]), b->emissions);
                if (e->emissions == NULL) { Py_CLEAR(e->prefix); goto done; }
                n_nxt++;
                e->blank = -INFINITY;
                e->non_blank = x->score;
                e->best_in = x->score;
                if (bounded) { /* heapq.heappushpop */
                    double v = x->score + e->prefix_score;
                    if (heap[0] < v) { heap[0] = v; heap_sift_down(heap, heap_n, 0); }
                }
                continue;
            }
            Entry *e = &nxt[at];
            e->non_blank = logaddexp(e->non_blank, x->score);
            if (x->score > e->best_in) {
                PyObject *node = new_emission(s, t, exp((double)lp[s]), b->emissions);
                if (node == NULL) goto done;
                Py_SETREF(e->emissions, node);
                e->best_in = x->score;
            }
        }
        /* the cut */
        int cut = n_nxt > beam_size;
        if (cut) {
            for (Py_ssize_t i = 0; i < n_nxt; i++) {
                ranked[i].key = total_of(&nxt[i]) + nxt[i].prefix_score;
                ranked[i].index = i;
            }
            qsort(ranked, n_nxt, sizeof(Ranked), cmp_ranked);
        }
        /* A prefix made lately that is in a beam now is part of the tree; one that has been in none for
         * keep_frames frames is forgotten: it has no children, so nothing else refers to it, and the
         * tree stays O(frames x beam). */
        {
            Py_ssize_t w = 0;
            for (Py_ssize_t k = 0; k < n_unused; k++) {
                Unused u = unused[k];
                if (survives(nxt, n_nxt, ranked, beam_size, cut, u.child)) continue;
                if (u.age < keep_frames) {
                    u.age++;
                    unused[w++] = u;
                } else if (PyDict_DelItem(u.parent_children, sym_keys[u.sym]) < 0) {
                    n_unused = w;
                    goto done;
                }
            }
            n_unused = w;
        }
        if (cut) {
            clear_entries(cur, n_cur);
            n_cur = 0;
            for (Py_ssize_t i = beam_size; i < n_nxt; i++) {
                Entry *gone = &nxt[ranked[i].index];
                Py_CLEAR(gone->prefix);
                Py_CLEAR(gone->emissions);
            }
            for (Py_ssize_t i = 0; i < beam_size; i++) cur[i] = nxt[ranked[i].index];
            n_cur = beam_size;
        } else {
            clear_entries(cur, n_cur);
            memcpy(cur, nxt, n_nxt * sizeof(Entry));
            n_cur = n_nxt;
        }
        n_nxt = 0;
    }

    /* the search ends here (until the next chunk): forget every prefix still unused */
    for (Py_ssize_t k = 0; k < n_unused; k++)
        if (PyDict_DelItem(unused[k].parent_children, sym_keys[unused[k].sym]) < 0) goto done;
    n_unused = 0;
    result = PyDict_New();
    if (result == NULL) goto done;
    for (Py_ssize_t i = 0; i < n_cur; i++) {
        Entry *e = &cur[i];
        PyObject *beam = PyObject_CallFunction(beam_type, "ddOd", e->blank, e->non_blank, e->emissions, e->best_in);
        if (beam == NULL || PyDict_SetItem(result, e->prefix, beam) < 0) {
            Py_XDECREF(beam);
            Py_CLEAR(result);
            goto done;
        }
        Py_DECREF(beam);
    }

done:
    clear_entries(cur, n_cur);
    clear_entries(nxt, n_nxt);
    PyMem_Free(cur);
    PyMem_Free(nxt);
    PyMem_Free(ext);
    PyMem_Free(ranked);
    PyMem_Free(heap);
    PyMem_Free(unused);
    for (int s = 0; s < MAX_SYMBOLS; s++) Py_XDECREF(sym_keys[s]);
    release(&lpb);
    release(&symb);
    release(&tlpb);
    release(&flb);
    return result;
}

static PyMethodDef methods[] = {
    {"advance", advance, METH_VARARGS, "BeamSearch.advance's frame loop (see model/ctc.py)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, .m_name = "_ctcbeam", .m_size = -1, .m_methods = methods};

PyMODINIT_FUNC PyInit__ctcbeam(void) {
#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL
    INTERN(s_last, "last");
    INTERN(s_score, "score");
    INTERN(s_children, "children");
    INTERN(s_blank, "blank");
    INTERN(s_non_blank, "non_blank");
    INTERN(s_emissions, "emissions");
    INTERN(s_best_in, "best_in");
    INTERN(s_child, "_child");
#undef INTERN
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "MAX_SYMBOLS", MAX_SYMBOLS) < 0) Py_CLEAR(m);
    return m;
}
