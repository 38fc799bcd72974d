{#- The four variance components of a two-way random ANOVA without replication, one row each, from a row's mean
    squares (ms_model, ms_target, ms_resid), seed noise and block size (m models, t targets), as a lateral join:
    base = (MS_model - MS_resid) / t, target = (MS_target - MS_resid) / m, interaction = MS_resid - noise; a value
    that is not finite (a 0/0 on a block of one model or target) is NULL. -#}
{% macro variance_components() -%}
lateral (select * from (values
        ('base', case when isfinite((ms_model - ms_resid) / t) then (ms_model - ms_resid) / t end),
        ('target', case when isfinite((ms_target - ms_resid) / m) then (ms_target - ms_resid) / m end),
        ('interaction', case when isfinite(ms_resid - noise) then ms_resid - noise end),
        ('noise', case when isfinite(noise) then noise end)
    ) v(component, variance))
{%- endmacro %}
