from django.apps import AppConfig


class LeaderboardConfig(AppConfig):
    name = "leaderboard"

    def ready(self) -> None:
        # providers cannot import this app: it sends a signal for the kept ratings and asks
        # through a registered check whether the rating rule for retirement applies.
        from providers.lifecycle import register_rule_check
        from providers.models import RetirementRule
        from providers.signals import transition_done

        from . import fairness

        transition_done.connect(fairness.keep_rating, dispatch_uid="leaderboard.keep_rating")
        register_rule_check(RetirementRule.BELOW_PERCENTILE, fairness.check_below_percentile)
