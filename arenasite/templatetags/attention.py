from django import template

from arenasite import attention

register = template.Library()


@register.simple_tag(takes_context=True)
def needs_attention(context):
    """The admin index's "needs attention" counts for the signed-in staff member."""
    return attention.items(context["request"].user)
