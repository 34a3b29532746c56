"""The import's temporary tables and the SQL that merges a batch from them into the real tables.

A batch is copied (PostgreSQL COPY, through psycopg's `cursor.copy()`) into a staging
table; the rows to skip are found by index lookups into the real tables, and the rest are
merged with INSERT ... SELECT ... ON CONFLICT DO NOTHING into battles, votes and style rows.
A handful of statements per batch, whatever its size. On another database (SQLite, for
development) the staging table is filled with executemany instead of COPY; the rest is the
same SQL.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import NOT_PROVIDED

from battles import importing
from battles.import_batches import STAGE_COLUMNS, STYLE_FIELDS, Batch
from battles.import_models import UNNAMED_NAMES, ModelResolver
from battles.importing import ImportRow
from battles.models import Battle, BattleStyle, ExclusionReason, Vote
from providers.models import ArenaModel

ALREADY_IMPORTED = "already imported"
DUPLICATE_IN_FILE = "duplicate in file"
SAME_VOTE = "already imported under another key (same models, winner, judge and time)"
# What Staging.skips finds, by the code its SQL writes.
SKIP_REASONS = {"A": ALREADY_IMPORTED, "D": DUPLICATE_IN_FILE, "S": SAME_VOTE}


class Staging:
    """The temporary tables of one import and the SQL that merges them into the real tables.

    import_stage holds one batch; import_skip the rows of the batch not to merge, with why;
    import_models the ids model names map to on each side (the side matters for
    `anonymous`, which has a stand-in per side); import_added the battles the batch added.
    """

    STAGE, SKIP, MODELS, ADDED = "import_stage", "import_skip", "import_models", "import_added"
    # The model ids of a staged row's names, by side; the staged rows of the battles the batch added.
    BY_NAME = f"""
            JOIN {MODELS} ma ON ma.side = 'a' AND ma.name = s.model_a
            JOIN {MODELS} mb ON mb.side = 'b' AND mb.name = s.model_b
        """
    ADDED_HERE = f"FROM {ADDED} a JOIN {STAGE} s ON s.question_id = a.question_id"

    def __init__(self, cursor):
        self.cursor = cursor
        self.postgresql = connection.vendor == "postgresql"
        self.mapped: set[tuple[str, str]] = set()
        q = connection.ops.quote_name
        self.battles = q(Battle._meta.db_table)
        self.votes = q(Vote._meta.db_table)
        self.styles = q(BattleStyle._meta.db_table)
        self.arena_models = q(ArenaModel._meta.db_table)

    def create(self) -> None:
        column = 1 if self.postgresql else 2
        columns = ", ".join(f"{spec[0]} {spec[column]}" for spec in STAGE_COLUMNS)
        # Dropped at the end of the import; ON COMMIT DROP is the backstop on PostgreSQL. They
        # are made in the import's transaction, so a refused file rolls them back with the rest.
        on_commit = " ON COMMIT DROP" if self.postgresql else ""
        if self.postgresql:
            # The per-batch statements are costed high enough for JIT compilation, which takes
            # longer than running them; for the rest of the import's transaction only.
            self.cursor.execute("SET LOCAL jit = off")
        self.cursor.execute(f"CREATE TEMPORARY TABLE {self.STAGE} ({columns}){on_commit}")
        self.cursor.execute(
            f"CREATE TEMPORARY TABLE {self.SKIP} (seq integer PRIMARY KEY, reason char(1) NOT NULL){on_commit}"
        )
        self.cursor.execute(
            f"CREATE TEMPORARY TABLE {self.MODELS} (side char(1) NOT NULL, name text NOT NULL, "
            f"id bigint NOT NULL, PRIMARY KEY (side, name)){on_commit}"
        )
        self.cursor.execute(
            f"CREATE TEMPORARY TABLE {self.ADDED} (battle_id bigint NOT NULL, question_id text NOT NULL){on_commit}"
        )

    def drop(self) -> None:
        self.cursor.execute(f"DROP TABLE {self.STAGE}")
        self.cursor.execute(f"DROP TABLE {self.SKIP}")
        self.cursor.execute(f"DROP TABLE {self.MODELS}")
        self.cursor.execute(f"DROP TABLE {self.ADDED}")

    def load(self, batch: Batch) -> None:
        """Empty the staging tables and load one batch."""
        self.cursor.execute(f"DELETE FROM {self.SKIP}")
        self.cursor.execute(f"DELETE FROM {self.ADDED}")
        names = ", ".join(spec[0] for spec in STAGE_COLUMNS)
        if self.postgresql:
            # TRUNCATE, not DELETE: the table is rewritten empty rather than left with dead rows to scan.
            self.cursor.execute(f"TRUNCATE {self.STAGE}")
            with self.cursor.cursor.copy(f"COPY {self.STAGE} ({names}) FROM STDIN") as copy:
                copy.write(batch.copy)
        else:
            self.cursor.execute(f"DELETE FROM {self.STAGE}")
            adapt = connection.ops.adapt_datetimefield_value
            at = [spec[0] for spec in STAGE_COLUMNS].index("created_at")
            self.cursor.executemany(
                f"INSERT INTO {self.STAGE} ({names}) VALUES ({', '.join(['%s'] * len(STAGE_COLUMNS))})",
                [(*values[:at], adapt(values[at]), *values[at + 1 :]) for values in batch.staged],
            )

    def skips(self, first_new_id: int) -> dict[int, str]:
        """Find the staged rows not to merge; {seq: code} (SKIP_REASONS)."""
        self._skip_known_keys(first_new_id)
        self._skip_same_votes()
        self.cursor.execute(f"SELECT seq, reason FROM {self.SKIP}")
        return dict(self.cursor.fetchall())

    def _skip_known_keys(self, first_new_id: int) -> None:
        """A key already stored: in this import's battles, the file holds it twice; else it was
        imported before. A key not stored: every occurrence after the first is in the file twice."""
        # The lookups into the real tables are scalar subqueries with LIMIT, looked up row by row
        # through an index: as a join or EXISTS, PostgreSQL may hash the whole table instead
        # (it did, on statistics from before the import), which grows with every batch.
        # OFFSET 0 keeps PostgreSQL from inlining the lookup into each use of it (twice per row).
        fence = "OFFSET 0" if self.postgresql else ""
        self.cursor.execute(
            f"""
            INSERT INTO {self.SKIP} (seq, reason)
            SELECT seq, reason FROM (
                SELECT seq,
                    CASE
                        WHEN known IS NULL THEN
                            CASE WHEN row_number() OVER (PARTITION BY question_id ORDER BY seq) > 1 THEN 'D' END
                        WHEN known >= %s THEN 'D'
                        ELSE 'A'
                    END AS reason
                FROM (
                    SELECT s.seq, s.question_id,
                        (SELECT b.id FROM {self.battles} b WHERE b.question_id = s.question_id LIMIT 1) AS known
                    FROM {self.STAGE} s {fence}
                ) looked_up
            ) keyed
            WHERE reason IS NOT NULL
            """,
            [first_new_id],
        )

    def _skip_same_votes(self) -> None:
        """Of the rows not skipped yet, a vote already stored under another key, or earlier in
        the batch: the same models (by name; a stand-in is `anonymous`), winner, judge (both
        keyed) and time."""
        stand_ins = ", ".join(["%s"] * len(UNNAMED_NAMES))
        self.cursor.execute(
            f"""
            INSERT INTO {self.SKIP} (seq, reason)
            SELECT seq, 'S' FROM (
                SELECT s.seq, s.model_a, s.model_b, s.winner, s.judge, s.created_at,
                    row_number() OVER (
                        PARTITION BY s.model_a, s.model_b, s.winner, s.judge, s.created_at ORDER BY s.seq
                    ) AS nth
                FROM {self.STAGE} s
                WHERE NOT EXISTS (SELECT 1 FROM {self.SKIP} k WHERE k.seq = s.seq)
            ) fresh
            WHERE nth > 1 OR (
                SELECT 1 FROM {self.votes} v
                JOIN {self.arena_models} ma ON ma.id = v.model_a_id
                JOIN {self.arena_models} mb ON mb.id = v.model_b_id
                WHERE v.judge = fresh.judge AND v.created_at = fresh.created_at AND v.winner = fresh.winner
                    AND CASE WHEN ma.name IN ({stand_ins}) THEN %s ELSE ma.name END = fresh.model_a
                    AND CASE WHEN mb.name IN ({stand_ins}) THEN %s ELSE mb.name END = fresh.model_b
                LIMIT 1
            ) IS NOT NULL
            """,
            [*UNNAMED_NAMES.values(), importing.ANONYMOUS, *UNNAMED_NAMES.values(), importing.ANONYMOUS],
        )

    def map_models(self, models: ModelResolver, rows: list[ImportRow]) -> None:
        """Add the model ids of the rows' names to import_models (once per name and side)."""
        needed = {("a", row.model_a) for row in rows} | {("b", row.model_b) for row in rows}
        new = sorted(needed - self.mapped)
        if new:
            self.cursor.executemany(
                f"INSERT INTO {self.MODELS} (side, name, id) VALUES (%s, %s, %s)",
                [(side, name, models.id_of(name, side)) for side, name in new],
            )
            self.mapped.update(new)

    def merge(self) -> tuple[int, int, int]:
        """Insert the staged rows not skipped as battles, votes and style rows; return the
        battles added, the unnamed votes added, and the votes added that the anomalous-voter
        test reads (anonymous and counting)."""
        added = self._merge_battles()
        self._merge_votes()
        self._merge_styles()
        unnamed, tested = self._count_added()
        return added, unnamed, tested

    def _merge_battles(self) -> int:
        """Insert the battles of the rows not skipped; their ids go to import_added. Returns how many."""
        jsonb = "::jsonb" if self.postgresql else ""
        battle_columns = {
            "question_id": "s.question_id",
            "model_a": "ma.id",
            "model_b": "mb.id",
            "anony": "s.anony",
            "source": "%s",
            "language": "s.language",
            "turn": "s.turn",
            "prompt_chars": "s.prompt_chars",
            "prompt_hash": "s.prompt_hash",
            "conversation_a": f"s.conversation_a{jsonb}",
            "conversation_b": f"s.conversation_b{jsonb}",
            "openai_moderation": f"s.openai_moderation{jsonb}",
            "toxic_chat_tag": f"s.toxic_chat_tag{jsonb}",
            "in_release_pool": "s.in_release_pool",
            "created_at": "s.created_at",
        }
        columns, values, params = self._columns(Battle, battle_columns, {"source": Battle.Source.IMPORTED})
        # ORDER BY: ids in the order of the file, as one insert after another would give. The
        # ids the insert returns go to import_added: what follows joins this batch's battles
        # alone, not the battles table (a key another import added meanwhile is not returned:
        # ON CONFLICT kept that import's battle, which has its own vote).
        insert = f"""
            INSERT INTO {self.battles} ({columns})
            SELECT {values} FROM {self.STAGE} s {self.BY_NAME}
            WHERE NOT EXISTS (SELECT 1 FROM {self.SKIP} k WHERE k.seq = s.seq)
            ORDER BY s.seq
            ON CONFLICT (question_id) DO NOTHING
            RETURNING id, question_id
        """
        if self.postgresql:
            self.cursor.execute(
                f"WITH added AS ({insert}) INSERT INTO {self.ADDED} (battle_id, question_id) SELECT * FROM added",
                params,
            )
            return self.cursor.rowcount
        self.cursor.execute(insert, params)
        returned = self.cursor.fetchall()
        self.cursor.executemany(f"INSERT INTO {self.ADDED} (battle_id, question_id) VALUES (%s, %s)", returned)
        return len(returned)

    def _merge_votes(self) -> None:
        """Insert the votes of the battles this batch added; one with a model labelled
        anonymous is excluded as unnamed_model."""
        vote_columns = {
            "battle": "a.battle_id",
            "model_a": "ma.id",
            "model_b": "mb.id",
            "anony": "s.anony",
            "winner": "s.winner",
            "judge": "s.judge",
            "excluded_reason": "CASE WHEN s.model_a = %s OR s.model_b = %s THEN %s ELSE '' END",
            "created_at": "s.created_at",
        }
        columns, values, params = self._columns(
            Vote,
            vote_columns,
            {"excluded_reason": (importing.ANONYMOUS, importing.ANONYMOUS, ExclusionReason.UNNAMED_MODEL)},
        )
        self.cursor.execute(
            f"""
            INSERT INTO {self.votes} ({columns})
            SELECT {values} {self.ADDED_HERE} {self.BY_NAME}
            WHERE true
            ON CONFLICT (battle_id) DO NOTHING
            """,
            params,
        )

    def _merge_styles(self) -> None:
        """Insert the answer style rows of the battles this batch added that have both answers."""
        style_columns_sql = {"battle": "a.battle_id", **{name: f"s.{name}" for name in STYLE_FIELDS}}
        columns, values, params = self._columns(BattleStyle, style_columns_sql, {})
        self.cursor.execute(
            f"""
            INSERT INTO {self.styles} ({columns})
            SELECT {values} {self.ADDED_HERE} WHERE s.tokens_a IS NOT NULL
            ON CONFLICT (battle_id) DO NOTHING
            """,
            params,
        )

    def _count_added(self) -> tuple[int, int]:
        """Of the battles this batch added: those with a model labelled anonymous, and the
        anonymous ones that count (the votes the anomalous-voter test reads)."""
        self.cursor.execute(
            f"""
            SELECT count(*) FILTER (WHERE s.model_a = %s OR s.model_b = %s),
                count(*) FILTER (WHERE s.anony AND s.model_a <> %s AND s.model_b <> %s)
            {self.ADDED_HERE}
            """,
            [importing.ANONYMOUS] * 4,
        )
        unnamed, tested = self.cursor.fetchone()
        return unnamed, tested

    def _columns(self, model, expressions: dict[str, str], expression_params: dict) -> tuple[str, str, list]:
        """The INSERT column list, SELECT list and parameters for `model`: `expressions` by
        field name; other fields take their database default, or their model default as a
        parameter. Spelled out from the model, so a column added later with a default needs
        nothing here."""
        columns, values, params = [], [], []
        for model_field in model._meta.concrete_fields:
            name = model_field.name
            if name in expressions:
                values.append(expressions[name])
                param = expression_params.get(name)
                params.extend(param if isinstance(param, tuple) else [] if param is None else [param])
            elif model_field.primary_key or model_field.db_default is not NOT_PROVIDED:
                continue
            elif model_field.has_default() or model_field.null:
                # A parameter in a SELECT list is text to PostgreSQL unless cast (SQLite has no such types).
                values.append(f"CAST(%s AS {model_field.db_type(connection)})" if self.postgresql else "%s")
                params.append(model_field.get_db_prep_save(model_field.get_default(), connection))
            else:
                raise RuntimeError(f"the importer does not know what to write in {model.__name__}.{name}")
            columns.append(connection.ops.quote_name(model_field.column))
        return ", ".join(columns), ", ".join(values), params
